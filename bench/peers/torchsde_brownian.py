"""torchsde's BrownianInterval queried as bench/brownian.c queries nde's.

256 channels (size (64, 4)), float64, on [0, 1]; per path a fresh interval
(built before the clock starts, with dt = 1/cells, as nde resets its own
before its clock), then a forward sweep of the queries [a_k, b_k] and the
same queries in reverse order; the per-query time of each sweep. Rows as
bench_brownian --json: grid cells (100 cells, 10^4 cells: a_k = k/cells)
and off-grid steps (100 cells, 101 steps of 1/101: every inner end strictly
inside a cell). One JSON line per row.

--paths-scale S runs S times nde's number of paths (at least 3): torchsde's
query costs tens of microseconds, so the peer may run fewer paths; the
per-query time is a median over paths either way.
"""
import argparse
import json
import time

import torch
import torchsde

ROWS = [("grid cells", 100, 2000, False), ("grid cells", 10000, 20, False),
        ("off-grid steps", 100, 50, True)]


def row(name, cells, paths, offgrid):
    nq = cells + 1 if offgrid else cells
    ends = [k / nq for k in range(nq + 1)]
    fwd, rev = [], []
    sink = 0.0
    for r in range(paths):
        bm = torchsde.BrownianInterval(t0=0.0, t1=1.0, size=(64, 4),
                                       dtype=torch.float64, dt=1.0 / cells,
                                       entropy=r + 1)
        t0 = time.perf_counter()
        for k in range(nq):
            sink += float(bm(ends[k], ends[k + 1])[0, k % 4])
        fwd.append(1e6 * (time.perf_counter() - t0) / nq)
        t0 = time.perf_counter()
        for k in reversed(range(nq)):
            sink += float(bm(ends[k], ends[k + 1])[0, k % 4])
        rev.append(1e6 * (time.perf_counter() - t0) / nq)
    return {"task": "brownian", "peer": "torchsde", "pattern": name,
            "queries": nq, "paths": paths, "fwd_us": fwd, "rev_us": rev,
            "checksum": sink}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--paths-scale", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (nde runs on one)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name, cells, paths, offgrid in ROWS:
        n = max(3, int(paths * args.paths_scale))
        print(json.dumps(row(name, cells, n, offgrid)), flush=True)


if __name__ == "__main__":
    main()
