"""torchsde on bench/sde.c's neural SDE (part 1).

State 4, batch 64, drift 4-64-tanh-4, diagonal diffusion 4-64-tanh-4 then a
sigmoid (input y, no time), t in [0, 1], dt = 0.01 (100 steps), loss
mean(y(1)^2), float64, a fresh Brownian path per iteration (a
torchsde.BrownianInterval built before the clock starts, with dt given, as
nde resets its own before its clock). y0 is bench_sde's: row-major batch x
4, y0[i] = 0.1 sin(0.37 i) + 0.05 (i mod 4). The parameters are nde's
initial ones (--params FILE from bench_sde --params: 1160 raw doubles, the
drift's W1 64x4, b1, W2 4x64, b2, then the diffusion's in the same layout).

Pairs (torchsde's configuration -> the nde pair doing the same work):
  euler:backprop           sdeint, Ito, euler           -> euler_maruyama:discrete
  reversible_heun:adjoint  sdeint_adjoint, Stratonovich, reversible_heun,
                           adjoint_method adjoint_reversible_heun
                                                        -> reversible_heun:reversible
  reversible_heun:backprop sdeint, Stratonovich, reversible_heun
                                                        -> reversible_heun:discrete

Per pair: WARMUP iterations, then --iters timed ones (zero_grad + solve +
loss + backward; no optimiser step, as bench_sde takes none). One JSON line
per pair. Counts: torchsde calls f and g separately (f_fwd, g_fwd, ...);
nfe_fwd is the f calls of the forward solve, comparable with nde's
evaluations (one nde evaluation = drift and diffusion once each); it
includes the one f and g call of sdeint's input check (check_contract).
evals_bwd: f calls during backward(); vjp_bwd: f calls made under grad mode
(those autograd differentiates): for backprop the forward's recorded calls,
for the reversible adjoint one of its two f_and_g calls per backward step.
"""
import argparse
import json
import math
import statistics
import sys
import time

import numpy as np
import torch
import torchsde

WARMUP = 3
BATCH, DIM, HIDDEN, DT = 64, 4, 64, 0.01
PAIRS = {
    "euler:backprop": ("euler_maruyama:discrete", "ito", "euler", None),
    "reversible_heun:adjoint": ("reversible_heun:reversible", "stratonovich",
                                "reversible_heun", "adjoint_reversible_heun"),
    "reversible_heun:backprop": ("reversible_heun:discrete", "stratonovich",
                                 "reversible_heun", None),
}


def mlp():
    return torch.nn.Sequential(torch.nn.Linear(DIM, HIDDEN), torch.nn.Tanh(),
                               torch.nn.Linear(HIDDEN, DIM))


class SDE(torch.nn.Module):
    noise_type = "diagonal"

    def __init__(self, sde_type):
        super().__init__()
        self.sde_type = sde_type
        self.drift = mlp()
        self.diffusion = mlp()
        self.nf = self.ng = self.nvjp = 0

    def f(self, t, y):
        self.nf += 1
        # a call under grad mode is one that autograd will differentiate
        self.nvjp += torch.is_grad_enabled()
        return self.drift(y)

    def g(self, t, y):
        self.ng += 1
        return torch.sigmoid(self.diffusion(y))


def load_params(model, path):
    theta = np.fromfile(path, dtype=np.float64)
    params = [m.weight if k == "w" else m.bias
              for net in (model.drift, model.diffusion)
              for m in (net[0], net[2]) for k in ("w", "b")]
    need = sum(p.numel() for p in params)
    if theta.size != need:
        sys.exit(f"{path}: {theta.size} doubles, expected {need} (drift "
                 "4-64-4 then diffusion 4-64-4: W1, b1, W2, b2 each)")
    off = 0
    with torch.no_grad():
        for p in params:
            p.copy_(torch.from_numpy(theta[off:off + p.numel()]).view_as(p))
            off += p.numel()


def run(args, name):
    nde_pair, sde_type, method, adjoint_method = PAIRS[name]
    model = SDE(sde_type)
    if args.params:
        load_params(model, args.params)
    y0 = torch.tensor([0.1 * math.sin(0.37 * i) + 0.05 * (i % DIM)
                       for i in range(BATCH * DIM)]).view(BATCH, DIM)
    ts = torch.tensor([0.0, 1.0])
    times, counts = [], None
    for it in range(WARMUP + args.iters):
        bm = torchsde.BrownianInterval(t0=0.0, t1=1.0, size=(BATCH, DIM),
                                       dtype=torch.float64, dt=DT,
                                       entropy=args.seed + it)
        model.zero_grad()
        model.nf = model.ng = model.nvjp = 0
        t0 = time.perf_counter()
        if adjoint_method:
            ys = torchsde.sdeint_adjoint(model, y0, ts, bm=bm, method=method,
                                         adjoint_method=adjoint_method, dt=DT)
        else:
            ys = torchsde.sdeint(model, y0, ts, bm=bm, method=method, dt=DT)
        nf, ng, nvjp = model.nf, model.ng, model.nvjp
        loss = torch.mean(ys[-1] ** 2)
        loss.backward()
        elapsed = time.perf_counter() - t0
        if it >= WARMUP:
            times.append(1e3 * elapsed)
            counts = (nf, ng, model.nf - nf, model.ng - ng,
                      model.nvjp - nvjp if adjoint_method else nvjp)
    f_fwd, g_fwd, f_bwd, g_bwd, vjp = counts
    return {"task": "sde", "peer": "torchsde", "pair": name,
            "nde_pair": nde_pair, "median_ms": statistics.median(times),
            "min_ms": min(times), "max_ms": max(times), "nfe_fwd": f_fwd,
            "evals_bwd": f_bwd, "vjp_bwd": vjp,
            "f_fwd": f_fwd, "g_fwd": g_fwd, "f_bwd": f_bwd, "g_bwd": g_bwd,
            "times_ms": times}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pair", choices=list(PAIRS), action="append")
    ap.add_argument("--iters", type=int, default=15)
    ap.add_argument("--params", help="nde's initial parameters (raw doubles)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (nde runs on one)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    for name in args.pair or list(PAIRS):
        print(json.dumps(run(args, name)), flush=True)


if __name__ == "__main__":
    main()
