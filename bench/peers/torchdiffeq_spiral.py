"""torchdiffeq on the spiral task as bench/spiral_train.c measures it.

Batch 20 windows of 10 consecutive points of the spiral y' = (y^3) A,
A = [[-0.1, 2], [-2, -0.1]], y(0) = (2, 0), 1000 points on [0, 25]; model
2-50-tanh-2 on y^3; dopri5; loss the MSE over every value of the windows
(as nde's windows task; torchdiffeq's demo uses the L1 loss); Adam with lr
1e-12, so every iteration is at the initial model; float64. Windows start at
one of the 991 first points (nde's choices), drawn without replacement.

Per configuration (tolerance x gradient): WARMUP iterations, then --iters
timed ones (zero_grad + forward + loss + backward + Adam step), then the
1000-point prediction from y(0) under no_grad, median of 7. One JSON line
per configuration on stdout.

NFE: nfe_fwd counts the model's calls in the forward solve; nfe_bwd counts
as nde's nfe_backward (evaluations + VJPs): backprop is one VJP per forward
call (autograd replays the graph); odeint_adjoint is one call and one VJP
(autograd.grad) per evaluation of the augmented system.

--params FILE loads the initial parameters nde wrote (bench_spiral_train
--params): 252 raw host-order doubles, W1 (50 x 2 row-major), b1 (50),
W2 (2 x 50), b2 (2), torch.nn.Linear's own layout.
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch
import torchdiffeq

WARMUP = 5
NPREDICT = 7
TOLS = {"1e-7/1e-9": (1e-7, 1e-9), "1e-3/1e-6": (1e-3, 1e-6)}
# gradient -> (the nde adjoint doing the same work, odeint_adjoint options)
GRADS = {
    "odeint": ("discrete", None),
    "odeint_adjoint": ("backsolve:full", {}),
    "odeint_adjoint:seminorm": ("backsolve:seminorm", {"norm": "seminorm"}),
}


class Field(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 50), torch.nn.Tanh(),
                                       torch.nn.Linear(50, 2))
        self.calls = 0

    def forward(self, t, y):
        self.calls += 1
        return self.net(y ** 3)


def load_params(model, path):
    theta = np.fromfile(path, dtype=np.float64)
    params = [model.net[0].weight, model.net[0].bias, model.net[2].weight,
              model.net[2].bias]
    need = sum(p.numel() for p in params)
    if theta.size != need:
        sys.exit(f"{path}: {theta.size} doubles, expected {need} "
                 "(2-50-2 mlp: W1, b1, W2, b2)")
    off = 0
    with torch.no_grad():
        for p in params:
            p.copy_(torch.from_numpy(theta[off:off + p.numel()]).view_as(p))
            off += p.numel()


def truth():
    t = torch.linspace(0.0, 25.0, 1000)
    A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])
    y0 = torch.tensor([[2.0, 0.0]])
    with torch.no_grad():
        y = torchdiffeq.odeint(lambda _, y: (y ** 3) @ A, y0, t, rtol=1e-10,
                               atol=1e-12, method="dopri5")
    return t, y0, y  # y: 1000 x 1 x 2


def run(args, tol, grad, data, rng):
    t, y0true, ytrue = data
    rtol, atol = TOLS[tol]
    adj_options = GRADS[grad][1]
    model = Field()
    if args.params:
        load_params(model, args.params)
    opt = torch.optim.Adam(model.parameters(), lr=1e-12)
    bt, batch = 10, 20
    tb = t[:bt]
    times, nfe_f, nfe_b = [], [], []

    for it in range(WARMUP + args.iters):
        starts = torch.from_numpy(rng.choice(1000 - bt + 1, batch,
                                             replace=False))
        by0 = ytrue[starts, 0]                                   # 20 x 2
        by = torch.stack([ytrue[starts + k, 0] for k in range(bt)])  # 10x20x2
        t0 = time.perf_counter()
        opt.zero_grad()
        model.calls = 0
        if adj_options is None:
            pred = torchdiffeq.odeint(model, by0, tb, rtol=rtol, atol=atol,
                                      method="dopri5")
        else:
            pred = torchdiffeq.odeint_adjoint(model, by0, tb, rtol=rtol,
                                              atol=atol, method="dopri5",
                                              adjoint_options=adj_options)
        fwd = model.calls
        loss = torch.mean((pred - by) ** 2)
        loss.backward()
        opt.step()
        elapsed = time.perf_counter() - t0
        if it >= WARMUP:
            times.append(1e3 * elapsed)
            nfe_f.append(fwd)
            nfe_b.append(fwd if adj_options is None
                         else 2 * (model.calls - fwd))

    ptimes = []
    for _ in range(NPREDICT):
        model.calls = 0
        t0 = time.perf_counter()
        with torch.no_grad():
            torchdiffeq.odeint(model, y0true, t, rtol=rtol, atol=atol,
                               method="dopri5")
        ptimes.append(1e3 * (time.perf_counter() - t0))
    return {"task": "spiral", "peer": "torchdiffeq", "tol": tol,
            "gradient": grad, "nde_adjoint": GRADS[grad][0],
            "median_ms": statistics.median(times), "min_ms": min(times),
            "max_ms": max(times),
            "nfe_fwd": int(statistics.median_low(nfe_f)),
            "nfe_bwd": int(statistics.median_low(nfe_b)),
            "nfe_fwd_mean": statistics.mean(nfe_f),
            "nfe_bwd_mean": statistics.mean(nfe_b),
            "predict_ms": statistics.median(ptimes),
            "predict_nfe": model.calls, "times_ms": times}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tol", choices=list(TOLS), action="append")
    ap.add_argument("--gradient", choices=list(GRADS), action="append")
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--params", help="nde's initial parameters (raw doubles)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (nde runs on one)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    data = truth()
    for tol in args.tol or list(TOLS):
        for grad in args.gradient or list(GRADS):
            print(json.dumps(run(args, tol, grad, data, rng)), flush=True)


if __name__ == "__main__":
    main()
