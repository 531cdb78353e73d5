"""torchsde's SDE-GAN example (examples/sde_gan.py), one training step timed.

The peer of nde's examples/sde_gan.ini: the example's own Generator,
Discriminator and get_data, imported from the torchsde checkout on
PYTHONPATH (its examples/ folder next to the torchsde package; the example
imports fire, matplotlib, tqdm and torchcde, so those must import too: see
bench/peers/README.md), at the example's defaults: data size 1, initial
noise 5, noise 3, hidden 16, MLP width 16 with one hidden layer, t_size 64
(dt 1: 63 reversible Heun steps, adjoint_reversible_heun for the gradient),
batch 1024 generated and 1024 real paths, Adadelta with the example's
learning rates and weight decay.

The timed step is the example's training step: the next real batch, a
generated batch, the discriminator on both, the Wasserstein loss, backward,
the sign flip of the generator's gradient, both optimisers, the weight
clipping of the discriminator's linear layers. The data set is built
before the clock (get_data solves 8192 OU paths). The example's stochastic
weight averaging starts at its step 5000 and is not timed. One JSON line:
times_ms of the timed steps, and the generator's f_and_g calls per step
(forward and backward) for reference.
"""
import argparse
import importlib.util
import json
import os
import sys
import time

import torch
import torchsde

WARMUP = 2


def load_example(path):
    if path is None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(
            torchsde.__file__)))
        path = os.path.join(root, "examples", "sde_gan.py")
    if not os.path.isfile(path):
        sys.exit(f"torchsde_sde_gan.py: {path} not found (give --example)")
    spec = importlib.util.spec_from_file_location("sde_gan_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=10,
                    help="timed steps (after %d warm-up steps)" % WARMUP)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--example", default=None,
                    help="path of torchsde's examples/sde_gan.py")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    ex = load_example(a.example)

    # The example's defaults (its main()'s keyword arguments).
    batch = 1024
    ts, data_size, loader = ex.get_data(batch_size=batch, device="cpu")
    real_stream = (b for _ in iter(int, 1) for b in loader)
    gen = ex.Generator(data_size, 5, 3, 16, 16, 1)
    disc = ex.Discriminator(data_size, 16, 16, 1)
    with torch.no_grad():
        for p in gen._initial.parameters():
            p *= 3
        for p in gen._func.parameters():
            p *= 0.5
    g_opt = torch.optim.Adadelta(gen.parameters(), lr=2e-4,
                                 weight_decay=0.01)
    d_opt = torch.optim.Adadelta(disc.parameters(), lr=1e-3,
                                 weight_decay=0.01)
    linears = [m for m in disc.modules() if isinstance(m, torch.nn.Linear)]

    calls = {"n": 0}
    inner = gen._func.f_and_g

    def counted(t, x):
        calls["n"] += 1
        return inner(t, x)
    gen._func.f_and_g = counted

    times, nfe = [], []
    for it in range(WARMUP + a.iters):
        calls["n"] = 0
        start = time.perf_counter()
        real, = next(real_stream)
        score = disc(gen(ts, batch)) - disc(real)
        score.backward()
        for p in gen.parameters():
            p.grad.neg_()
        g_opt.step()
        d_opt.step()
        g_opt.zero_grad()
        d_opt.zero_grad()
        with torch.no_grad():
            for m in linears:
                bound = 1.0 / m.out_features
                m.weight.clamp_(-bound, bound)
        elapsed = time.perf_counter() - start
        if it >= WARMUP:
            times.append(1e3 * elapsed)
            nfe.append(calls["n"])
    print(json.dumps({"task": "sde_gan", "peer": "torchsde",
                      "batch": batch, "t_size": len(ts),
                      "times_ms": times, "generator_calls": nfe}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
