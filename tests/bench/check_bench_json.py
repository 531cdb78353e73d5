#!/usr/bin/env python3
"""The bench programs' --json modes, as bench/peers/run.py reads them: one
JSON line per selected configuration with the fields the driver uses, the
initial parameters written by --params, and usage errors (exit 2).

Usage: check_bench_json.py BENCH_SPIRAL_TRAIN BENCH_SDE BENCH_BROWNIAN
                           BENCH_TRAIN_JSON
"""
import json
import os
import subprocess
import sys
import tempfile

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print(f"FAIL: {what}", file=sys.stderr)


def lines(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    check(p.returncode == 0, f"{cmd}: exit {p.returncode}: {p.stderr}")
    return [json.loads(x) for x in p.stdout.splitlines()]


def usage_error(cmd, word="usage"):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    check(p.returncode == 2 and word in p.stderr and not p.stdout,
          f"{cmd}: expected a usage error, got {p.returncode}")


def main():
    spiral, sde, brownian, trainj = sys.argv[1:5]
    spiral_ini = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              "..", "..", "examples", "spiral.ini")
    with tempfile.TemporaryDirectory() as tmp:
        params = os.path.join(tmp, "spiral.bin")
        out = lines([spiral, "--json", "--iters", "2", "--tol", "1e-3/1e-6",
                     "--adjoint", "backsolve:seminorm", "--controller", "i",
                     "--params", params])
        check(len(out) == 1, f"spiral: {len(out)} lines, expected 1")
        r = out[0]
        check(r["tol"] == "1e-3/1e-6" and r["adjoint"] ==
              "backsolve:seminorm", f"spiral: selected {r}")
        check(len(r["times_ms"]) == 3 * 2, "spiral: 3 passes x 2 times")
        check(r["min_ms"] <= r["median_ms"] <= r["max_ms"], "spiral: order")
        check(r["nfe_fwd"] > 0 and r["nfe_bwd"] > 0 and r["predict_nfe"] > 0
              and r["nfe_fwd_mean"] > 0, "spiral: NFE")
        # 2-50-2: W1 100 + b1 50 + W2 100 + b2 2
        check(os.path.getsize(params) == 252 * 8, "spiral: params size")
        out = lines([spiral, "--json", "--iters", "1", "--adjoint",
                     "discrete"])
        check([r["tol"] for r in out] == ["1e-7/1e-9", "1e-3/1e-6"],
              "spiral: --adjoint alone keeps both tolerances")

        params = os.path.join(tmp, "sde.bin")
        out = lines([sde, "--json", "--iters", "1", "--pair",
                     "reversible_heun:reversible", "--params", params])
        check(len(out) == 1, f"sde: {len(out)} lines, expected 1")
        r = out[0]
        check(r["solver"] == "reversible_heun" and
              r["adjoint"] == "reversible", f"sde: selected {r}")
        # 100 steps and reversible Heun's first evaluation
        check(r["nfe_fwd"] == 101 and r["evals_bwd"] > 0 and
              r["vjp_bwd"] > 0, f"sde: counts {r}")
        check(len(r["times_ms"]) == 3, "sde: 3 passes x 1 time")
        # drift and diffusion, each 4-64-4: 2 x (256 + 64 + 256 + 4)
        check(os.path.getsize(params) == 1160 * 8, "sde: params size")

        out = lines([brownian, "--json"])
        check([(r["pattern"], r["refine"], r["queries"]) for r in out] ==
              [("grid cells", "tree", 100), ("grid cells", "tree", 10000),
               ("off-grid steps", "tree", 101),
               ("off-grid steps", "split", 101)], "brownian: rows")
        check(all(len(r["fwd_us"]) == r["paths"] == len(r["rev_us"])
                  for r in out), "brownian: one time per path")

        params = os.path.join(tmp, "train.bin")
        out = lines([trainj, spiral_ini, "-s", "train.lr=1e-12", "--iters",
                     "5", "--eval-every", "2", "--params", params])
        check(len(out) == 1, f"train_json: {len(out)} lines, expected 1")
        r = out[0]
        check([e["iteration"] for e in r["evals"]] == [2, 4, 5],
              f"train_json: evaluations {r['evals']}")
        check(all(e["test_accuracy"] is None for e in r["evals"]),
              "train_json: no accuracy for a time series")
        check(r["evals"][0]["train_s"] < r["evals"][2]["train_s"] and
              abs(r["evals"][2]["train_s"] - 1e-3 * sum(r["times_ms"]))
              < 1e-4, "train_json: training time before each evaluation")
        check(len(r["times_ms"]) == len(r["nfe_fwd"]) == len(r["nfe_bwd"])
              == len(r["loss"]) == 5, "train_json: one entry per iteration")
        check(r["nparams"] == 252 and os.path.getsize(params) == 252 * 8,
              "train_json: params size")

    for cmd in ([spiral, "--iters", "0"], [spiral, "--bogus"],
                [spiral, "--tol"], [sde, "--iters", "x"], [sde, "--pair"],
                [brownian, "--jsonx"], [trainj], [trainj, "--iters", "1"],
                [trainj, spiral_ini, "--iters", "0"],
                [trainj, spiral_ini, "--eval-every", "x"],
                [trainj, spiral_ini, "--bogus", "1"],
                [trainj, spiral_ini, "-s"]):
        usage_error(cmd)
    for cmd in ([spiral, "--json", "--tol", "1e-7"],
                [spiral, "--adjoint", "backsolve"],
                [sde, "--json", "--pair", "euler_maruyama"]):
        usage_error(cmd, "matches")
    print(f"{0 if failures else 1} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
