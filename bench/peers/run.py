#!/usr/bin/python3
"""Run nde's bench programs next to torchdiffeq and torchsde, interleaved,
and print a markdown table of medians, spreads, ratios and NFE.

Usage: /usr/bin/python3 bench/peers/run.py BUILD_DIR [options]
(BUILD_DIR: a configured and built nde build directory; this script builds
nothing.) The peers must be importable by --python: torchdiffeq, torchsde
and trampoline on PYTHONPATH (see README.md); bench/peers/compat is put last
on the peers' PYTHONPATH as a stand-in for a missing trampoline.

Each round runs every task's nde program and then its peer (the order
alternates between rounds); times are pooled over the rounds. A row whose
NFE differ by more than --nfe-tol (relative) is flagged: its ratio is not
per unit of work.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run_json(cmd, env=None):
    """Runs cmd, returns its stdout's JSON lines; exits on failure."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"run.py: {' '.join(cmd)} failed ({p.returncode}):\n"
                 f"{p.stderr.strip()}")
    return [json.loads(line) for line in p.stdout.splitlines()
            if line.startswith("{")]


class Pool:
    """Times and counts of one side of one row, pooled over rounds."""

    def __init__(self):
        self.times, self.nfe, self.bwd = [], [], []

    def add(self, times, nfe=None, bwd=None):
        self.times += times
        if nfe is not None:
            self.nfe.append(nfe)
        if bwd is not None:
            self.bwd.append(bwd)

    def summary(self):
        return (statistics.median(self.times), min(self.times),
                max(self.times))

    def count(self, which):
        v = self.nfe if which == "fwd" else self.bwd
        return statistics.mean(v) if v else None


class Row:
    def __init__(self, name, unit, bwd_comparable):
        self.name, self.unit = name, unit
        self.bwd_comparable = bwd_comparable
        self.nde, self.peer = Pool(), Pool()


def differ(a, b, tol):
    return a is not None and b is not None and \
        abs(a - b) > tol * max(abs(a), abs(b), 1e-300)


def fmt_count(v):
    if v is None:
        return "-"
    return f"{v:.0f}" if abs(v - round(v)) < 1e-9 else f"{v:.1f}"


class Bench:
    def __init__(self, args, tmp):
        self.a, self.tmp = args, tmp
        self.rows = {}
        env = dict(os.environ)
        path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(path + [os.path.join(HERE,
                                                                 "compat")])
        self.env = env

    def row(self, key, name, unit, bwd_comparable=True):
        if key not in self.rows:
            self.rows[key] = Row(name, unit, bwd_comparable)
        return self.rows[key]

    def nde(self, prog):
        return os.path.join(self.a.build, "bench", prog)

    def peer(self, script):
        return [self.a.python, os.path.join(HERE, script),
                "--threads", str(self.a.threads)]

    # ---- spiral: bench_spiral_train vs torchdiffeq_spiral.py ----------
    def spiral_setup(self):
        self.spiral_params = os.path.join(self.tmp, "spiral.bin")
        run_json([self.nde("bench_spiral_train"), "--json", "--iters", "1",
                  "--tol", "1e-3/1e-6", "--adjoint", "discrete",
                  "--params", self.spiral_params])

    def spiral_nde(self):
        for r in run_json([self.nde("bench_spiral_train"), "--json",
                           "--controller", "i", "--iters",
                           str(self.a.spiral_iters)]):
            self.spiral_add(r["tol"], r["adjoint"], r, "nde")

    def spiral_peer(self):
        for r in run_json(self.peer("torchdiffeq_spiral.py") + [
                "--iters", str(self.a.spiral_iters),
                "--params", self.spiral_params], self.env):
            self.spiral_add(r["tol"], r["nde_adjoint"], r, "peer",
                            r["gradient"])

    def spiral_add(self, tol, adjoint, r, side, gradient=None):
        if adjoint not in ("discrete", "backsolve:full", "backsolve:seminorm"):
            return  # no torchdiffeq counterpart
        peer = {"discrete": "odeint", "backsolve:full": "odeint_adjoint",
                "backsolve:seminorm": "odeint_adjoint:seminorm"}[adjoint]
        row = self.row(("spiral", tol, adjoint),
                       f"spiral iteration {tol}, nde {adjoint} vs "
                       f"torchdiffeq {peer}", "ms",
                       bwd_comparable=adjoint != "discrete")
        getattr(row, side).add(r["times_ms"], r["nfe_fwd_mean"],
                               r["nfe_bwd_mean"])
        if adjoint == "discrete":
            pr = self.row(("spiral-predict", tol),
                          f"spiral prediction 1000 points {tol}", "ms")
            getattr(pr, side).add([r["predict_ms"]], r["predict_nfe"])

    # ---- sde: bench_sde vs torchsde_sde.py ------------------------------
    def sde_setup(self):
        self.sde_params = os.path.join(self.tmp, "sde.bin")
        run_json([self.nde("bench_sde"), "--json", "--iters", "1", "--pair",
                  "euler_maruyama:discrete", "--params", self.sde_params])

    SDE_PEERS = {"euler_maruyama:discrete": "euler:backprop",
                 "reversible_heun:reversible": "reversible_heun:adjoint",
                 "reversible_heun:discrete": "reversible_heun:backprop"}

    def sde_nde(self):
        for r in run_json([self.nde("bench_sde"), "--json", "--iters",
                           str(self.a.sde_iters)]):
            pair = f"{r['solver']}:{r['adjoint']}"
            if pair in self.SDE_PEERS:
                self.sde_add(pair, r, "nde")

    def sde_peer(self):
        for r in run_json(self.peer("torchsde_sde.py") + [
                "--iters", str(self.a.sde_iters),
                "--params", self.sde_params], self.env):
            self.sde_add(r["nde_pair"], r, "peer")

    def sde_add(self, pair, r, side):
        row = self.row(("sde", pair),
                       f"neural SDE iteration, nde {pair} vs torchsde "
                       f"{self.SDE_PEERS[pair]}", "ms",
                       bwd_comparable=not pair.endswith(":discrete"))
        getattr(row, side).add(r["times_ms"], r["nfe_fwd"],
                               r["evals_bwd"] + r["vjp_bwd"])

    # ---- brownian: bench_brownian vs torchsde_brownian.py --------------
    def brownian_setup(self):
        pass

    def brownian_nde(self):
        for r in run_json([self.nde("bench_brownian"), "--json"]):
            self.brownian_add(r, "nde")

    def brownian_peer(self):
        for r in run_json(self.peer("torchsde_brownian.py") + [
                "--paths-scale", str(self.a.brownian_scale)], self.env):
            self.brownian_add(r, "peer")

    def brownian_add(self, r, side):
        # nde's off-grid rows come with each refinement (tree bisection,
        # split at the query times); torchsde's one row faces both
        refines = [r["refine"]] if "refine" in r else (
            ["tree", "split"] if r["pattern"] == "off-grid steps" else
            ["tree"])
        for refine in refines:
            label = r["pattern"] + (", nde split" if refine == "split"
                                    else "")
            for sweep, key in (("forward", "fwd_us"), ("reverse", "rev_us")):
                row = self.row(("brownian", label, r["queries"], sweep),
                               f"Brownian Interval query, {label} "
                               f"({r['queries']} per path), {sweep} sweep",
                               "us")
                getattr(row, side).add(r[key])

    # ---- fmnist: bench_train_json vs torchdiffeq_fashion_mnist.py -------
    FMNIST_INI = os.path.join(HERE, "..", "..", "examples",
                              "fashion_mnist.ini")
    FMNIST_DATA = "/usr/share/datasets/fashion-mnist"
    # nde adjoint -> (torchdiffeq gradient, iterations option)
    FMNIST_PAIRS = {"discrete": ("odeint", "fmnist_iters"),
                    "backsolve": ("odeint_adjoint", "fmnist_adjoint_iters")}

    def fmnist_setup(self):
        if not os.path.isdir(self.FMNIST_DATA):
            print(f"run.py: {self.FMNIST_DATA} absent (apt-get install "
                  "dataset-fashion-mnist): Fashion-MNIST skipped",
                  file=sys.stderr)
            return False
        self.fmnist_params = os.path.join(self.tmp, "fmnist.bin")
        run_json([self.nde("bench_train_json"), self.FMNIST_INI, "--iters",
                  "1", "--eval-every", "0", "--params", self.fmnist_params])
        return True

    def fmnist_nde(self):
        for adjoint, (_, iters) in self.FMNIST_PAIRS.items():
            r = run_json([self.nde("bench_train_json"), self.FMNIST_INI,
                          "-s", "solver.controller=i", "-s",
                          f"adjoint.plugin={adjoint}", "--iters",
                          str(getattr(self.a, iters)), "--eval-every",
                          str(self.a.fmnist_eval_every)])[0]
            self.fmnist_add(adjoint, r, "nde")

    def fmnist_peer(self):
        for adjoint, (gradient, iters) in self.FMNIST_PAIRS.items():
            r = run_json(self.peer("torchdiffeq_fashion_mnist.py") + [
                "--gradient", gradient, "--iters",
                str(getattr(self.a, iters)), "--eval-every",
                str(self.a.fmnist_eval_every), "--params",
                self.fmnist_params], self.env)[0]
            self.fmnist_add(adjoint, r, "peer")

    def fmnist_add(self, adjoint, r, side):
        gradient = self.FMNIST_PAIRS[adjoint][0]
        row = self.row(("fmnist", adjoint),
                       f"Fashion-MNIST iteration, nde {adjoint} vs "
                       f"torchdiffeq {gradient}", "ms",
                       bwd_comparable=adjoint != "discrete")
        getattr(row, side).add(r["times_ms"], statistics.mean(r["nfe_fwd"]),
                               statistics.mean(r["nfe_bwd"]))
        if adjoint != "discrete":
            return
        target = self.a.fmnist_target
        reached = [e["train_s"] for e in r["evals"]
                   if e["test_accuracy"] >= target]
        row = self.row(("fmnist-acc",),
                       f"Fashion-MNIST training time to test accuracy "
                       f"{target} (nde discrete vs torchdiffeq odeint; "
                       f"evaluated every {self.a.fmnist_eval_every})", "s")
        row.note = "same settings, own batches"
        pool = getattr(row, side)
        pool.add([reached[0]] if reached else [])
        pool.missed = getattr(pool, "missed", 0) + (not reached)

    # ---- sdegan: bench_train_json vs torchsde_sde_gan.py ---------------
    SDEGAN_INI = os.path.join(HERE, "..", "..", "examples", "sde_gan.ini")

    def sdegan_setup(self):
        pass

    def sdegan_nde(self):
        r = run_json([self.nde("bench_train_json"), self.SDEGAN_INI,
                      "--iters", str(self.a.sdegan_iters),
                      "--eval-every", "0"])[0]
        self.sdegan_add(r["times_ms"], "nde")

    def sdegan_peer(self):
        r = run_json(self.peer("torchsde_sde_gan.py") + [
            "--iters", str(self.a.sdegan_iters)], self.env)[0]
        self.sdegan_add(r["times_ms"], "peer")

    def sdegan_add(self, times, side):
        row = self.row(("sdegan",), "SDE-GAN training step (examples/"
                       "sde_gan.ini vs torchsde examples/sde_gan.py)", "ms")
        row.note = ("same sizes and steps; one joint solve vs three "
                    "solves (bench/peers/README.md)")
        getattr(row, side).add(times)

    # ---- the rounds and the table ---------------------------------------
    def run(self):
        tasks = [t for t in self.a.tasks.split(",")
                 if getattr(self, f"{t}_setup")() is not False]
        for rnd in range(self.a.rounds):
            for t in tasks:
                sides = ("nde", "peer") if rnd % 2 == 0 else ("peer", "nde")
                for side in sides:
                    print(f"run.py: round {rnd + 1}/{self.a.rounds}: {t} "
                          f"{side}", file=sys.stderr, flush=True)
                    getattr(self, f"{t}_{side}")()

    def table(self):
        out = []
        flagged = 0
        out.append("| task | nde median (min-max) | peer median (min-max) | "
                   "peer/nde | NFE fwd nde / peer | NFE bwd nde / peer | "
                   "work |")
        out.append("|---|---|---|---|---|---|---|")
        for row in self.rows.values():
            missed = [f"{side} missed it in {getattr(pool, 'missed', 0)} "
                      "round(s)" for side, pool in (("nde", row.nde),
                                                    ("peer", row.peer))
                      if getattr(pool, "missed", 0)]
            if not row.nde.times or not row.peer.times:
                if missed:
                    out.append(f"| {row.name} | - | - | - | - | - | "
                               f"{'; '.join(missed)} |")
                continue
            nm, nl, nh = row.nde.summary()
            pm, pl, ph = row.peer.summary()
            nf, pf = row.nde.count("fwd"), row.peer.count("fwd")
            nb, pb = row.nde.count("bwd"), row.peer.count("bwd")
            bad = []
            if differ(nf, pf, self.a.nfe_tol):
                bad.append(f"fwd NFE differ {100 * (pf - nf) / nf:+.0f}%")
            if row.bwd_comparable and differ(nb, pb, self.a.nfe_tol):
                bad.append(f"bwd NFE differ {100 * (pb - nb) / nb:+.0f}%")
            flagged += bool(bad)
            work = "**NOT EQUAL: " + "; ".join(bad) + "**" if bad else \
                getattr(row, "note", None) or \
                ("equal" if nf is not None else "same queries")
            if missed:
                work += "; " + "; ".join(missed)
            bwd = f"{fmt_count(nb)} / {fmt_count(pb)}"
            if nb is not None and not row.bwd_comparable:
                bwd += " (not comparable)"
            u = row.unit
            out.append(f"| {row.name} | {nm:.3f} {u} ({nl:.3f}-{nh:.3f}) | "
                       f"{pm:.3f} {u} ({pl:.3f}-{ph:.3f}) | {pm / nm:.1f}x | "
                       f"{fmt_count(nf)} / {fmt_count(pf)} | {bwd} | {work} |")
        return "\n".join(out), flagged


def versions(python, env):
    code = ("import json, torch, torchdiffeq, torchsde; print(json.dumps("
            "[torch.__version__, torchdiffeq.__version__, "
            "torchsde.__version__]))")
    p = subprocess.run([python, "-c", code], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, env=env)
    if p.returncode != 0:
        sys.exit("run.py: the peers do not import (see bench/peers/README.md)"
                 f":\n{p.stderr.strip()}")
    return json.loads(p.stdout)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build", help="nde build directory (built)")
    ap.add_argument("--tasks", default="spiral,sde,brownian,fmnist",
                    help="comma-separated: spiral, sde, brownian, fmnist, "
                    "sdegan")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--spiral-iters", type=int, default=40,
                    help="timed iterations per configuration per pass")
    ap.add_argument("--sde-iters", type=int, default=15)
    ap.add_argument("--brownian-scale", type=float, default=0.1,
                    help="the peer's paths per row, a fraction of nde's")
    ap.add_argument("--fmnist-iters", type=int, default=400,
                    help="Fashion-MNIST iterations, discrete vs odeint "
                    "(examples/fashion_mnist.ini's 400)")
    ap.add_argument("--fmnist-adjoint-iters", type=int, default=100,
                    help="Fashion-MNIST iterations, backsolve vs "
                    "odeint_adjoint")
    ap.add_argument("--fmnist-eval-every", type=int, default=50)
    ap.add_argument("--sdegan-iters", type=int, default=10,
                    help="timed SDE-GAN steps per pass")
    ap.add_argument("--fmnist-target", type=float, default=0.8,
                    help="test accuracy for the time-to-accuracy row")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads")
    ap.add_argument("--nfe-tol", type=float, default=0.05,
                    help="relative NFE difference that flags a row")
    ap.add_argument("--python", default="/usr/bin/python3",
                    help="the Python that imports torch and the peers")
    args = ap.parse_args()
    for t in args.tasks.split(","):
        if t not in ("spiral", "sde", "brownian", "fmnist", "sdegan"):
            ap.error(f"unknown task '{t}' (known: spiral, sde, brownian, "
                     "fmnist, sdegan)")
    for prog in ("bench_spiral_train", "bench_sde", "bench_brownian",
                 "bench_train_json"):
        if not os.access(os.path.join(args.build, "bench", prog), os.X_OK):
            ap.error(f"{args.build}/bench/{prog} missing: build nde first "
                     "(ninja -C BUILD_DIR)")

    with tempfile.TemporaryDirectory(prefix="nde-peers-") as tmp:
        b = Bench(args, tmp)
        torch_v, tdq_v, tsde_v = versions(args.python, b.env)
        b.run()
        table, flagged = b.table()
    print(f"Peers, same machine, same run: "
          f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; "
          f"{os.cpu_count()} CPUs ({cpu_model()}); torch {torch_v}, "
          f"torchdiffeq {tdq_v}, torchsde {tsde_v}; torch threads "
          f"{args.threads}; {args.rounds} rounds interleaved\n")
    print("Command: /usr/bin/python3 bench/peers/run.py " +
          " ".join(sys.argv[1:]) + "\n")
    print(table)
    print("\nNFE: field evaluations per iteration (mean over iterations and "
          "rounds); bwd: evaluations + VJPs as nde counts them (bench/peers/"
          "README.md). 'not comparable': backprop through a stored graph vs "
          "nde's discrete adjoint, which re-evaluates the stages. Rows marked "
          f"NOT EQUAL differ by more than {100 * args.nfe_tol:.0f}% in NFE: "
          "their ratio is not per unit of work.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
