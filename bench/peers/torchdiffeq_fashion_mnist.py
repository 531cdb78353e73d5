"""torchdiffeq Fashion-MNIST classifier with examples/fashion_mnist.ini's
settings, as nde's classify task builds it (train/include/nde/train.h).

Data: Debian's dataset-fashion-mnist IDX files (the config's defaults),
the first 10000 training and 2000 test images, pixels / 255; if the files
are absent the script prints a JSON line saying so and exits 0. Model:
linear encoder 784 -> 32, the ODE y' = mlp(y) (32-64-tanh-32, no time) on
t in [0, 1] with tsit5 at rtol 1e-3 / atol 1e-4, y(1) only, linear decoder
32 -> 10, softmax cross-entropy (mean over the batch); Adam lr 3e-3
(0.9, 0.999, 1e-8); batch 128, consecutive examples of a new random order
each epoch (a batch may straddle two epochs); float64.

--params FILE loads nde's initial parameters (bench_train_json --params:
29642 raw doubles, [field W1 (64 x 32) b1 W2 (32 x 64) b2 | encoder W
(32 x 784) b | decoder W (10 x 32) b], torch.nn.Linear's layout). The
driver runs nde with `solver.controller = i`, torchdiffeq's step control.

One JSON line as bench_train_json's: every iteration's time (zero_grad +
batch + forward + loss + backward + Adam step) and NFE (as
torchdiffeq_spiral.py counts them), and the test evaluations (in chunks of
128 rows, as nde) with the training time spent before each.
"""
import argparse
import gzip
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torchdiffeq

DATA = "/usr/share/datasets/fashion-mnist"
FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
BATCH, RTOL, ATOL, LR = 128, 1e-3, 1e-4, 3e-3


def read_idx(path, limit):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big")
            for i in range(ndim)]
    a = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    a = a.reshape(dims)[:limit]
    return a


class Field(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(32, 64),
                                       torch.nn.Tanh(),
                                       torch.nn.Linear(64, 32))
        self.calls = 0

    def forward(self, t, y):
        self.calls += 1
        return self.net(y)


class Classifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.field = Field()
        self.enc = torch.nn.Linear(784, 32)
        self.dec = torch.nn.Linear(32, 10)

    def forward(self, x, adjoint):
        t = torch.tensor([0.0, 1.0])
        solve = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
        y = solve(self.field, self.enc(x), t, rtol=RTOL, atol=ATOL,
                  method="tsit5")
        return self.dec(y[-1])

    def ordered_params(self):
        f = self.field.net
        return [f[0].weight, f[0].bias, f[2].weight, f[2].bias,
                self.enc.weight, self.enc.bias, self.dec.weight,
                self.dec.bias]


def load_params(model, path):
    theta = np.fromfile(path, dtype=np.float64)
    params = model.ordered_params()
    need = sum(p.numel() for p in params)
    if theta.size != need:
        sys.exit(f"{path}: {theta.size} doubles, expected {need}")
    off = 0
    with torch.no_grad():
        for p in params:
            p.copy_(torch.from_numpy(theta[off:off + p.numel()]).view_as(p))
            off += p.numel()


class Stream:
    """batch_size consecutive examples of a new random order each epoch."""

    def __init__(self, n, rng):
        self.n, self.rng = n, rng
        self.order, self.pos = rng.permutation(n), 0

    def next(self, size):
        out = []
        while len(out) < size:
            if self.pos == self.n:
                self.order, self.pos = self.rng.permutation(self.n), 0
            take = min(size - len(out), self.n - self.pos)
            out.extend(self.order[self.pos:self.pos + take])
            self.pos += take
        return torch.as_tensor(np.array(out))


def evaluate(model, xt, yt):
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(yt), BATCH):
            logits = model(xt[i:i + BATCH], adjoint=False)
            loss += torch.nn.functional.cross_entropy(
                logits, yt[i:i + BATCH], reduction="sum").item()
            correct += (logits.argmax(1) == yt[i:i + BATCH]).sum().item()
    return loss / len(yt), correct / len(yt)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gradient", choices=["odeint", "odeint_adjoint"],
                    default="odeint")
    ap.add_argument("--iters", type=int, default=400)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--params", help="nde's initial parameters (raw doubles)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (nde runs on one)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    missing = [f for f in FILES if not os.path.exists(os.path.join(DATA, f))]
    if missing:
        print(json.dumps({"task": "train", "skipped":
                          f"{DATA}: {', '.join(missing)} absent (apt-get "
                          "install dataset-fashion-mnist)"}))
        return 0
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x, y, xt, yt = (read_idx(os.path.join(DATA, f), lim)
                    for f, lim in zip(FILES, (10000, 10000, 2000, 2000)))
    x = torch.from_numpy(x.reshape(len(x), -1) / 255.0)
    xt = torch.from_numpy(xt.reshape(len(xt), -1) / 255.0)
    y, yt = torch.from_numpy(y.astype(np.int64)), \
        torch.from_numpy(yt.astype(np.int64))

    model = Classifier()
    if args.params:
        load_params(model, args.params)
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.999),
                           eps=1e-8)
    stream = Stream(len(y), np.random.default_rng(args.seed))
    adjoint = args.gradient == "odeint_adjoint"
    times, nfe_f, nfe_b, losses, evals = [], [], [], [], []
    train_s = 0.0
    for it in range(1, args.iters + 1):
        t0 = time.perf_counter()
        idx = stream.next(BATCH)
        opt.zero_grad()
        model.field.calls = 0
        loss = torch.nn.functional.cross_entropy(model(x[idx], adjoint),
                                                 y[idx])
        fwd = model.field.calls
        loss.backward()
        opt.step()
        elapsed = time.perf_counter() - t0
        train_s += elapsed
        times.append(1e3 * elapsed)
        nfe_f.append(fwd)
        nfe_b.append(2 * (model.field.calls - fwd) if adjoint else fwd)
        losses.append(loss.item())
        if (args.eval_every > 0 and it % args.eval_every == 0) or \
                it == args.iters:
            tl, acc = evaluate(model, xt, yt)
            evals.append({"iteration": it, "train_s": train_s,
                          "test_loss": tl, "test_accuracy": acc})
    print(json.dumps({"task": "train", "peer": "torchdiffeq",
                      "gradient": args.gradient,
                      "nparams": sum(p.numel() for p in model.parameters()),
                      "median_ms": statistics.median(times), "evals": evals,
                      "times_ms": times, "nfe_fwd": nfe_f, "nfe_bwd": nfe_b,
                      "loss": losses}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
