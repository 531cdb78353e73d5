"""The nde Python package on the build tree's libraries: the spiral example
trained from a short script, its numbers in numpy, and its errors.

Run by meson (suite python) with PYTHONPATH at the source's python/ and
NDE_LIBRARY_PATH at the build's libraries; NDE_SOURCE_ROOT names the source.
"""

import contextlib
import ctypes
import io
import math
import os
import re
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import nde

ROOT = os.environ["NDE_SOURCE_ROOT"]
SPIRAL = os.path.join(ROOT, "examples", "spiral.ini")


def spiral(iterations=20, **overrides):
    cfg = nde.Config.from_file(SPIRAL)
    cfg.set("train.iterations", iterations)
    for key, value in overrides.items():
        cfg.set(key.replace("__", "."), value)
    return cfg


class TestTrain(unittest.TestCase):
    def test_spiral_script(self):
        tr = nde.Trainer(spiral(200))
        before = tr.evaluate()["test_loss"]
        theta0 = tr.params
        seen = []
        hist = tr.train(callback=seen.append)
        self.assertEqual(tr.iteration, 200)
        self.assertEqual(len(seen), 200)
        self.assertEqual(seen[-1].iteration, 200)
        self.assertIsInstance(hist["loss"], np.ndarray)
        np.testing.assert_array_equal(hist["iteration"], np.arange(1, 201))
        np.testing.assert_array_equal(hist["loss"], [s.loss for s in seen])
        self.assertTrue(np.all(np.isfinite(hist["loss"])))
        self.assertTrue(np.all(hist["nfe_forward"] > 0))
        # Learning: the last batches fit better than the first, and the
        # held-out trajectory too.
        self.assertLess(hist["loss"][-50:].mean(), hist["loss"][:50].mean())
        after = tr.evaluate()
        self.assertLess(after["test_loss"], before)
        self.assertTrue(math.isnan(after["test_accuracy"]))
        # The parameters moved, and have a name each.
        theta = tr.params
        self.assertEqual(theta.shape, theta0.shape)
        self.assertEqual(theta.size, 2 * 50 + 50 + 50 * 2 + 2)
        self.assertGreater(np.abs(theta - theta0).max(), 1e-3)
        names = tr.param_names
        self.assertEqual(len(names), theta.size)
        self.assertEqual(len(set(names)), theta.size)
        # A copy: changing it does not change the model.
        theta[:] = 0
        self.assertGreater(np.abs(tr.params).max(), 0)

    def test_predict_and_solve(self):
        tr = nde.Trainer(spiral(5))
        tr.train()
        y = tr.predict(0.0, np.array([[2.0, 0.0], [1.0, -1.0], [0, 1]]),
                       5.0, 11)
        self.assertEqual(y.shape, (11, 3, 2))
        np.testing.assert_array_equal(y[0], [[2, 0], [1, -1], [0, 1]])
        self.assertTrue(np.all(np.isfinite(y)))
        # The same row alone gives the same trajectory; one state works.
        y1 = tr.predict(0.0, [1.0, -1.0], 5.0, np.linspace(0, 5, 11))
        self.assertEqual(y1.shape, (11, 1, 2))
        np.testing.assert_allclose(y1[:, 0], y[:, 1], rtol=1e-6, atol=1e-8)
        # [problem]: y0 = 2, 0 on [0, 25], nsave = 51.
        t, ys = tr.solve()
        np.testing.assert_array_equal(t, np.linspace(0, 25, 51))
        self.assertEqual(ys.shape, (51, 1, 2))
        with self.assertRaises(ValueError):
            tr.predict(0.0, np.zeros((1, 3)), 1.0, 3)

    def test_predict_rows_beyond_the_batch(self):
        # The trainer takes [problem]'s 3 rows though it trains on 1.
        with open(SPIRAL) as f:
            text = f.read().replace("y0 = 2, 0", "y0 = 2, 0\n  0, 2\n  1, 1")
        cfg = nde.Config.from_string(text).set("train.batch_size", 1)
        with self.assertRaises(ValueError):
            cfg.set("problem.y0", [[2, 0], [0, 2]])
        tr = nde.Trainer(cfg)
        t, y = tr.solve()
        self.assertEqual(y.shape, (51, 3, 2))
        with self.assertRaises(nde.Error) as e:
            tr.predict(0.0, np.ones((4, 2)), 1.0, 2)
        self.assertEqual(e.exception.status, "NDE_EINVAL")
        self.assertEqual(nde.Trainer(spiral(1, train__batch_size=1),
                                     predict_rows=4)
                         .predict(0.0, np.ones((4, 2)), 1.0, 2).shape,
                         (2, 4, 2))
        with self.assertRaises(ValueError):
            nde.Trainer(spiral(1), predict_rows=-1)

    def test_from_dict_is_the_file(self):
        d = {
            "solver": {"plugin": "tsit5", "rtol": 1e-6, "atol": 1e-8},
            "field": {"plugin": "mlp", "layers": np.array([2, 50, 2]),
                      "activation": "tanh", "input": "cube", "time": False},
            "adjoint": {"plugin": "interpolating"},
            "data": {"source": "spiral", "npoints": 1000, "t1": 25,
                     "batch_time": 10},
            "train": {"iterations": 3, "batch_size": 20, "lr": 3e-3,
                      "lr_decay": 0.999, "seed": 1},
            "problem": {"t0": 0, "t1": 1, "y0": [[2, 0], [0, 2]],
                        "nsave": 3},
        }
        a = nde.Trainer(nde.Config.from_dict(d)).train()
        b = nde.Trainer(spiral(3)).train()
        np.testing.assert_array_equal(a["loss"], b["loss"])
        t, y = nde.Trainer(nde.Config.from_dict(d)).solve()
        self.assertEqual(y.shape, (3, 2, 2))

    def test_text(self):
        cfg = spiral(7).set("solver.rtol", 1e-5)
        text = cfg.text()
        self.assertIn("[solver]", text)
        self.assertIn("rtol=1e-05", text.replace(" ", ""))
        self.assertIn("iterations=7", text.replace(" ", ""))
        canon = cfg.text(canonical=True)
        self.assertEqual(nde.Config.from_string(canon).text(canonical=True),
                         canon)

    def test_callback_stops(self):
        tr = nde.Trainer(spiral(50))
        hist = tr.train(callback=lambda s: s.iteration < 3)
        self.assertEqual(tr.iteration, 3)
        self.assertEqual(len(hist["loss"]), 3)
        # None goes on; an explicit count runs past [train] iterations.
        hist = tr.train(iterations=2, callback=lambda s: None)
        self.assertEqual(tr.iteration, 5)

    def test_save_and_load(self):
        tr = nde.Trainer(spiral(10))
        tr.train(iterations=4)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.ckpt")
            tr.save(path)
            self.assertEqual(os.listdir(tmp), ["m.ckpt"])
            back = nde.Trainer.load(path)
        self.assertEqual(back.iteration, 4)
        np.testing.assert_array_equal(back.params, tr.params)
        # Resumed: the next iteration is the same, bit for bit.
        self.assertEqual(back.step().loss, tr.step().loss)
        np.testing.assert_array_equal(back.params, tr.params)


class TestSolve(unittest.TestCase):
    """nde.solve: a config without [data], as `nde solve` runs it."""

    def test_lotka_volterra_as_the_program(self):
        path = os.path.join(ROOT, "examples", "lotka_volterra.ini")
        t, y, st = nde.solve(nde.Config.from_file(path))
        out = subprocess.run([os.environ.get("NDE_EXE", "nde"), "solve",
                              path], check=True, capture_output=True,
                             text=True).stdout.splitlines()
        rows = np.array([[float(v) for v in line.split(",")]
                         for line in out[1:]])
        np.testing.assert_array_equal(t, rows[:, 0])
        np.testing.assert_array_equal(y[:, 0, :], rows[:, 1:])
        self.assertGreater(st["nfe"], 0)

    def test_event_times(self):
        # examples/ball.ini: from 10 m at rest and from 2 m at 5 m/s up,
        # g = 9.81: the ground at the roots of x0 + v0 t - g t^2 / 2
        _, _, st = nde.solve(nde.Config.from_file(
            os.path.join(ROOT, "examples", "ball.ini")))
        g = 9.81
        want = [math.sqrt(2 * 10 / g), (5 + math.sqrt(25 + 2 * g * 2)) / g]
        np.testing.assert_allclose(st["event_t"], want, rtol=1e-9)
        _, _, st = nde.solve(nde.Config.from_file(
            os.path.join(ROOT, "examples", "lotka_volterra.ini")))
        self.assertNotIn("event_t", st)

    def test_params_and_sde_seed(self):
        cfg = nde.Config.from_string(
            "[problem]\nt0 = 0\nt1 = 1\ny0 = 1\n  2\nnsave = 3\n"
            "[solver]\nplugin = euler_maruyama\ndt = 0.01\n"
            "[field]\nplugin = expr\nstate = x\nparams = a=0.5, s=0.3\n"
            "dx = a*x\ngx = s*x\n")
        t, y1, _ = nde.solve(cfg, seed=4)
        _, y2, _ = nde.solve(cfg, seed=4)
        _, y3, _ = nde.solve(cfg, seed=5)
        np.testing.assert_array_equal(y1, y2)
        self.assertFalse(np.array_equal(y1, y3))
        # no noise, no growth: x stays put
        _, y0, _ = nde.solve(cfg, params=[0.0, 0.0])
        np.testing.assert_array_equal(y0[-1, :, 0], [1.0, 2.0])
        with self.assertRaises(ValueError):
            nde.solve(cfg, params=[1.0])
        with self.assertRaises(nde.Error):
            nde.solve(nde.Config.from_string("[solver]\nplugin = tsit5\n"))


class TestModel(unittest.TestCase):
    """Parameters set from numpy, SDE paths, class probabilities and the
    regularizers' values."""

    def test_set_params(self):
        a, b = nde.Trainer(spiral(30)), nde.Trainer(spiral(1))
        a.train()
        y0 = np.array([[2.0, 0.0]])
        self.assertFalse(np.array_equal(a.predict(0, y0, 5, 6),
                                        b.predict(0, y0, 5, 6)))
        b.params = a.params
        np.testing.assert_array_equal(b.params, a.params)
        np.testing.assert_array_equal(a.predict(0, y0, 5, 6),
                                      b.predict(0, y0, 5, 6))
        # the model moves with its parameters: a zero field stays put
        b.params = np.zeros(b.params.size)
        np.testing.assert_array_equal(b.predict(0, y0, 5, 6)[-1], y0)
        with self.assertRaises(ValueError):
            b.params = np.zeros(3)
        bad = a.params
        bad[0] = math.nan
        with self.assertRaises(ValueError):
            b.params = bad

    def test_intervene(self):
        tr = nde.Trainer(spiral(5))
        tr.train()
        free = tr.predict(0, [2.0, 0.0], 5, 6)
        tr.intervene({1: 0.5})
        held = tr.predict(0, [2.0, 0.0], 5, 6)
        np.testing.assert_array_equal(held[:, 0, 1], 0.5)
        self.assertFalse(np.array_equal(held[:, 0, 0], free[:, 0, 0]))
        tr.intervene(None)
        np.testing.assert_array_equal(tr.predict(0, [2.0, 0.0], 5, 6), free)
        with self.assertRaises(ValueError):
            tr.intervene({2: 1.0})
        with self.assertRaises(ValueError):
            tr.intervene({0: math.inf})

    def test_sample_sde(self):
        cfg = nde.Config.from_file(os.path.join(ROOT, "examples",
                                                "sde_ou.ini"))
        tr = nde.Trainer(cfg.set("train.iterations", 5))
        tr.train()
        y0 = np.full((200, 1), 2.0)
        p1, p1b = tr.sample(0, y0, 2, 11, seed=1), tr.sample(0, y0, 2, 11,
                                                            seed=1)
        p2 = tr.sample(0, y0, 2, 11, seed=2)
        self.assertEqual(p1.shape, (11, 200, 1))
        np.testing.assert_array_equal(p1, p1b)
        self.assertGreater(np.abs(p1[-1] - p2[-1]).max(), 1e-3)
        # paths spread: the rows differ from each other
        self.assertGreater(p1[-1].std(), 1e-3)
        with self.assertRaises(nde.Error) as e:
            nde.Trainer(spiral(1)).sample(0, [2.0, 0.0], 1, 2)
        self.assertEqual(e.exception.status, "NDE_EINVAL")

    def test_class_probabilities(self):
        cfg = nde.Config.from_file(os.path.join(ROOT, "examples",
                                                "annuli.ini"))
        cfg.set("train.iterations", 20).set("data.n_test", 50)
        tr = nde.Trainer(cfg)
        self.assertIsNone(nde.Trainer(spiral(1)).test_classes())
        tr.train()
        acc = tr.evaluate()["test_accuracy"]
        labels, prob = tr.test_classes()
        self.assertEqual(labels.shape, (50,))
        self.assertEqual(prob.shape, (50, 2))
        np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-12)
        self.assertAlmostEqual((prob.argmax(axis=1) == labels).mean(), acc)

    def test_regularizer_values(self):
        tr = nde.Trainer(spiral(3, regularizer__local__plugin="local",
                                regularizer__local__weight=0.1))
        (r,) = tr.regularizers
        self.assertEqual(r["name"], "local")
        self.assertTrue(math.isnan(r["value"]))
        tr.train()
        (r,) = tr.regularizers
        self.assertGreater(r["value"], 0)
        self.assertEqual(r["weight"], 0.1)
        self.assertGreater(r["grad_norm"], 0)
        self.assertEqual(nde.Trainer(spiral(1)).regularizers, [])


class TestReadme(unittest.TestCase):
    def test_from_python_section(self):
        # The README's script as a notebook user pastes it, in a fresh
        # directory (its config path made absolute).
        with open(os.path.join(ROOT, "README.md")) as f:
            readme = f.read()
        section = readme[readme.index("\n## From Python\n"):]
        script = re.search(r"```python\n(.*?)```", section, re.S).group(1)
        script = script.replace('"examples/spiral.ini"', repr(SPIRAL))
        out = io.StringIO()
        with tempfile.TemporaryDirectory() as tmp:
            cwd = os.getcwd()
            os.chdir(tmp)
            try:
                names = {}
                with contextlib.redirect_stdout(out):
                    exec(compile(script, "README.md", "exec"), names)
                ckpt = os.path.join(tmp, "spiral_py.ckpt")
                back = nde.Trainer.load(ckpt)
                pred = subprocess.run(
                    [os.environ["NDE_EXE"], "predict", ckpt, "-o", "p.csv"],
                    capture_output=True, text=True)
                self.assertEqual(pred.returncode, 0, pred.stderr)
                self.assertIn("test_loss", pred.stderr + pred.stdout)
            finally:
                os.chdir(cwd)
        lines = out.getvalue().splitlines()
        self.assertEqual([l.split()[0] for l in lines[:4]],
                         ["500", "1000", "1500", "2000"])
        hist, tr = names["hist"], names["tr"]
        self.assertEqual(hist["loss"].shape, (2000,))
        self.assertEqual(names["y"].shape, (251, 1, 2))
        np.testing.assert_array_equal(back.params, tr.params)
        # Trained: the held-out trajectory is fitted (the untrained
        # network's test loss is above 0.5).
        self.assertLess(tr.evaluate()["test_loss"], 0.2)


class TestLayout(unittest.TestCase):
    def test_mirrors_match_the_headers(self):
        from nde import _lib
        out = subprocess.run([os.environ["NDE_LAYOUT"]], check=True,
                             capture_output=True, text=True).stdout
        c = dict(line.split() for line in out.splitlines())
        mirrors = {"nde_train_step": _lib.TrainStep,
                   "nde_eval_result": _lib.EvalResult,
                   "nde_train_totals": _lib.Totals,
                   "nde_train_settings": _lib.Settings,
                   "nde_stats": _lib.Stats, "nde_problem": _lib.Problem,
                   "nde_field": _lib.FieldHead}
        for name, mirror in mirrors.items():
            members = {k.split(".")[1]: int(v) for k, v in c.items()
                       if k.startswith(name + ".")}
            self.assertEqual(set(members), {f for f, _ in mirror._fields_},
                             name)
            for member, offset in members.items():
                self.assertEqual(getattr(mirror, member).offset, offset,
                                 "%s.%s" % (name, member))
            if name != "nde_field":  # a prefix only
                self.assertEqual(ctypes.sizeof(mirror), int(c[name]), name)


class TestLibraryPath(unittest.TestCase):
    def test_relative_then_chdir(self):
        # NDE_LIBRARY_PATH relative to where Python starts, then a chdir
        # (as a notebook does): the build tree's plugins are still found.
        dirs = os.environ["NDE_LIBRARY_PATH"].split(os.pathsep)
        cwd = os.path.dirname(dirs[0])
        env = dict(os.environ, NDE_LIBRARY_PATH=os.pathsep.join(
            os.path.relpath(d, cwd) for d in dirs))
        code = ("import os, sys, nde; os.chdir('/'); "
                "nde.Trainer(nde.Config.from_file(sys.argv[1])).step()")
        run = subprocess.run([sys.executable, "-c", code, SPIRAL], cwd=cwd,
                             env=env, capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stderr)


class TestErrors(unittest.TestCase):
    def test_bad_key_in_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "bad.ini")
            with open(SPIRAL) as f:
                text = f.read()
            with open(path, "w") as f:
                f.write(text.replace("rtol = 1e-6", "rtoll = 1e-6"))
            cfg = nde.Config.from_file(path)
            with self.assertRaises(nde.Error) as e:
                nde.Trainer(cfg)
        self.assertEqual(e.exception.status, "NDE_ECONFIG")
        msg = str(e.exception)
        self.assertIn("bad.ini:", msg)
        self.assertIn("[solver] rtoll: unknown key", msg)
        self.assertIn("'rtol'", msg)

    def test_bad_override_and_value(self):
        with self.assertRaises(nde.Error) as e:
            nde.Trainer(spiral(2, solver__rtoll=1))
        self.assertIn("-s solver.rtoll=1", str(e.exception))
        with self.assertRaises(nde.Error) as e:
            nde.Trainer(spiral(2, train__lr="fast"))
        self.assertIn("[train] lr", str(e.exception))
        with self.assertRaises(nde.Error) as e:
            nde.Config.from_file("/nonexistent/x.ini")
        self.assertEqual(e.exception.status, "NDE_EIO")
        self.assertIn("/nonexistent/x.ini", str(e.exception))
        with self.assertRaises(nde.Error):
            nde.Config.from_string("[solver\nplugin = tsit5\n")

    def test_failed_solve_raises(self):
        tr = nde.Trainer(spiral(2, solver__max_steps=1))
        with self.assertRaises(nde.Error) as e:
            tr.step()
        self.assertEqual(e.exception.status, "NDE_EMAXSTEPS")
        self.assertEqual(tr.iteration, 0)

    def test_failure_absorbed(self):
        tr = nde.Trainer(spiral(2, solver__max_steps=1,
                                train__on_failure="skip"))
        hist = tr.train()
        self.assertEqual(hist["failed"], ["NDE_EMAXSTEPS"] * 2)
        self.assertEqual(tr.totals["failures"], 2)

    def test_unset(self):
        cfg = spiral(2)
        self.assertEqual(nde.Trainer(spiral(2)).settings["lr_decay"], 0.999)
        cfg.unset("train.lr_decay")
        self.assertEqual(nde.Trainer(cfg).settings["lr_decay"], 1.0)
        with self.assertRaises(nde.Error) as e:
            spiral(2).unset("train.lr_decayy")
        self.assertIn("nothing to remove", str(e.exception))

    def test_frozen_config(self):
        cfg = spiral(2)
        nde.Trainer(cfg)
        with self.assertRaises(nde.Error):
            cfg.set("train.lr", 0.1)

    def test_load_missing(self):
        with self.assertRaises(nde.Error) as e:
            nde.Trainer.load("/nonexistent/m.ckpt")
        self.assertIn("/nonexistent/m.ckpt", str(e.exception))


if __name__ == "__main__":
    unittest.main(verbosity=2)
