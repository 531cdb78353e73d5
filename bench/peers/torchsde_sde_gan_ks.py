"""torchsde's SDE-GAN example (examples/sde_gan.py) trained as its main()
runs it, scored by nde's measure: the KS statistic of the marginals.

The quality reference for nde's examples/sde_gan.ini (issue 16's target:
KS below 0.1 at every checked time). The example's main() runs unchanged
(its defaults: Adadelta, weight decay, initial scaling, weight averaging
from step 5000 of 10000) with two of its functions wrapped:
evaluate_loss, which main() calls every steps_per_print steps with the
live generator (and the averaged one after the averaging starts), also
scores that generator against a data set generated before main() runs;
plot, which main() calls at the end with the averaged generator and a
data set it generates for the purpose, scores it against that one instead
of plotting. A score is nde's sde_gan task's: N_GEN paths of the generator
against the held-out data set's values (the ones the example did not drop)
at t = 0, 6, 18, 31, 44, 56, 63 (the task's plot_locs), two-sample KS
statistic (scipy.stats.ks_2samp) per time and its largest. The held-out
values are read before the example's linear interpolation fills the
dropped ones (torchcde.linear_interpolation_coeffs is wrapped to keep its
input). One JSON line per score on stdout.

Run (about 0.6 s a step on this machine; the peer setup is in README.md):
  PYTHONPATH=...torchsde:...torchcde /usr/bin/python3 \
      bench/peers/torchsde_sde_gan_ks.py --steps 10000 --every 1000
"""
import argparse
import json
import sys

import numpy as np
import scipy.stats
import torch

from torchsde_sde_gan import load_example  # this script's directory

PLOT_LOCS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
N_GEN = 8192


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--every", type=int, default=1000,
                    help="score the live generator every this many steps")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--example", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    ex = load_example(a.example)

    raw = []  # every data set get_data builds, its values: (paths, times)
    interpolate = ex.torchcde.linear_interpolation_coeffs

    def keep_raw(ys, *args, **kw):
        raw.append(ys[..., 1].clone())
        return interpolate(ys, *args, **kw)
    ex.torchcde.linear_interpolation_coeffs = keep_raw
    ex.get_data(batch_size=1024, device="cpu")  # raw[0]: held out

    state = {"step": 0, "live_calls": 0, "live": None}

    def score(ts, generator, values, label):
        with torch.no_grad():
            gen = torch.cat([generator(ts, 1024)[..., 1]
                             for _ in range(N_GEN // 1024)]).numpy()
        ks = {}
        for loc in PLOT_LOCS:
            k = int(loc * (len(ts) - 1))
            real = values[:, k].numpy()
            real = real[~np.isnan(real)]
            ks[str(k)] = round(float(scipy.stats.ks_2samp(gen[:, k],
                                                          real).statistic), 4)
        print(json.dumps({"step": state["step"], "generator": label,
                          "ks": ks, "largest": max(ks.values())}),
              flush=True)

    evaluate = ex.evaluate_loss

    def evaluate_and_score(ts, batch_size, dataloader, generator,
                           discriminator):
        # main() calls this at steps 0, every, 2 every, ... and its last
        # with the live generator (the first one seen), then, once the
        # averaging has started, with the averaged one.
        if state["live"] is None:
            state["live"] = generator
        if generator is state["live"]:
            state["step"] = min(state["live_calls"] * a.every, a.steps - 1)
            state["live_calls"] += 1
        score(ts, generator, raw[0],
              "live" if generator is state["live"] else "averaged")
        return evaluate(ts, batch_size, dataloader, generator,
                        discriminator)

    def plot_and_score(ts, generator, dataloader, num_plot_samples,
                       plot_locs):
        state["step"] = a.steps
        score(ts, generator, raw[-1], "final averaged, new data set")

    ex.evaluate_loss = evaluate_and_score
    ex.plot = plot_and_score
    ex.main(steps=a.steps, steps_per_print=a.every,
            swa_step_start=min(5000, a.steps // 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
