"""nde from Python: configs, training, evaluation and prediction with numpy.

A thin layer (ctypes, no compiled extension) over libnde and libnde-train;
plugins are found as the `nde` program finds them (the build tree's, then
$NDE_PLUGIN_PATH, then the installed ones). For where the libraries are
found, see nde._lib.

    import nde
    cfg = nde.Config.from_file("examples/spiral.ini")
    cfg.set("train.iterations", 200)
    tr = nde.Trainer(cfg)
    hist = tr.train()                  # numpy arrays per metric
    print(hist["loss"][-1], tr.evaluate()["test_loss"])
    y = tr.predict(0.0, [[2.0, 0.0]], 25.0, 51)   # (51, 1, 2)

Every failure of the library raises nde.Error with its message (naming
the file, line, section and key of a bad config); wrong Python arguments
raise ValueError or TypeError. Objects are not thread-safe: use one
Trainer per thread.
"""

import ctypes
import dataclasses
import math
import os

import numpy as np

from . import _lib

__all__ = ["Error", "Config", "Trainer", "Step", "version"]


class Error(Exception):
    """A failed call into nde: `status` is its name (e.g. "NDE_ECONFIG"),
    `message` the library's message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def version():
    """libnde's version string, e.g. "0.1.0"."""
    return _lib.nde.nde_version().decode()


def _check(rc, ctx):
    if rc != _lib.OK:
        name = _lib.nde.nde_status_name(rc).decode()
        msg = _lib.nde.nde_ctx_message(ctx)
        raise Error(name, msg.decode(errors="replace") if msg else name)


def _new_ctx():
    ctx = _lib.nde.nde_ctx_create()
    if not ctx:
        raise MemoryError("nde_ctx_create")
    return ctx


def _format(value):
    """A Python value as config text: numbers so they read back the same,
    booleans as true/false, sequences joined by ", "; a sequence of
    sequences (a matrix, several y0 rows) one row per line."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))  # the shortest text that reads back
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.ndim in (1, 2):
        value = value.tolist()
    if isinstance(value, (list, tuple)) and value:
        if all(isinstance(r, (list, tuple, np.ndarray)) for r in value):
            return "\n    ".join(_format(r) for r in value)
        return ", ".join(_format(v) for v in value)
    raise TypeError("nde: cannot write %r as a config value" % (value,))


class Config:
    """An nde config: INI sections and keys, as the `nde` program reads.

    Build one with Config.from_file, Config.from_string or Config.from_dict,
    then change keys with set() (as the program's -s) and unset() (-u).
    A Config given to a Trainer is frozen: the trainer reads it for its
    whole life.
    """

    def __init__(self):
        self._frozen = False
        self._ctx = _new_ctx()
        self._cfg = _lib.nde.nde_config_create()
        if not self._cfg:
            raise MemoryError("nde_config_create")  # __del__ frees _ctx

    def __del__(self):
        if getattr(self, "_cfg", None):
            _lib.nde.nde_config_destroy(self._cfg)
        if getattr(self, "_ctx", None):
            _lib.nde.nde_ctx_destroy(self._ctx)

    @classmethod
    def from_file(cls, path):
        """Read an INI file; paths in it are relative to its directory."""
        cfg = cls()
        _check(_lib.nde.nde_config_load_file(
            cfg._cfg, os.fsencode(path), cfg._ctx), cfg._ctx)
        return cfg

    @classmethod
    def from_string(cls, text, origin="<string>"):
        """Read INI text; messages name `origin` and the line."""
        cfg = cls()
        _check(_lib.nde.nde_config_load_string(
            cfg._cfg, origin.encode(), text.encode(), cfg._ctx), cfg._ctx)
        return cfg

    @classmethod
    def from_dict(cls, sections, origin="<dict>"):
        """Build from {"section": {"key": value}} (section names as in the
        INI file, e.g. "regularizer.kinetic"); values as Config.set takes.
        Relative paths are relative to the working directory."""
        lines = []
        for name, keys in sections.items():
            lines.append("[%s]" % name)
            for key, value in keys.items():
                lines.append("%s = %s" % (key, _format(value)))
        return cls.from_string("\n".join(lines) + "\n", origin)

    def text(self, canonical=False):
        """The effective config (after set and unset) as INI text that
        loads back to the same values; canonical: sorted, every checked
        value in its parsed form (as checkpoints store it)."""
        buf, size = ctypes.c_void_p(), _lib.c_size()
        fp = _lib.libc.open_memstream(ctypes.byref(buf), ctypes.byref(size))
        if not fp:
            raise MemoryError("open_memstream")
        write = (_lib.nde.nde_config_write_canonical if canonical
                 else _lib.nde.nde_config_write)
        rc = write(self._cfg, fp)
        closed = _lib.libc.fclose(fp)
        try:
            if rc != _lib.OK or closed != 0:
                raise Error("NDE_EIO", "cannot write the config text")
            return ctypes.string_at(buf.value, size.value).decode()
        finally:
            _lib.libc.free(buf)

    def _editable(self):
        if self._frozen:
            raise Error("NDE_EINVAL", "this Config is used by a Trainer: "
                        "change it before making the Trainer")

    def set(self, key, value):
        """Set "section.key" to value (a number, bool, string or list; one
        row), as `nde ... -s section.key=value` does; returns self."""
        self._editable()
        text = _format(value)
        if "\n" in text:
            raise ValueError("nde: %s: an override is one row; give a matrix "
                             "in the config (from_dict, from_string)" % key)
        text = "%s=%s" % (key, text)
        _check(_lib.nde.nde_config_override(self._cfg, text.encode(),
                                            self._ctx), self._ctx)
        return self

    def unset(self, key):
        """Remove "section.key" so that its default applies (`-u`)."""
        self._editable()
        _check(_lib.nde.nde_config_unset(self._cfg, key.encode(), self._ctx),
               self._ctx)
        return self


def solve(config, params=None, seed=1):
    """Solve a config's [problem] as `nde solve` does, without [data] or
    training: [field] with its initial parameters (or `params`, its
    nparams values), [solver] and [problem]; an SDE through the Brownian
    path of `seed`. Returns (tsave, y (nsave x batch x dim), stats: nfe,
    steps_accepted, steps_rejected, ..., and with a [problem] event
    "event_t", each row's event time, NaN where it did not fire)."""
    if not isinstance(config, Config):
        raise TypeError("nde.solve needs an nde.Config")
    if not 0 <= int(seed) < 1 << 64:
        raise ValueError("nde: seed must be in [0, 2^64)")
    ctx = _new_ctx()
    run = ctypes.c_void_p()
    try:
        _check(_lib.nde.nde_run_create(ctx, config._cfg, ctypes.byref(run)),
               ctx)
        f = _lib.nde.nde_run_field(run).contents
        p = _lib.nde.nde_run_problem(run).contents
        if params is not None:
            params = np.asarray(params, dtype=float)
            if params.shape != (f.nparams,) or not np.all(
                    np.isfinite(params)):
                raise ValueError("nde: params must be %d finite values, got "
                                 "shape %s" % (f.nparams, params.shape))
            if f.nparams:
                np.ctypeslib.as_array(_lib.nde.nde_run_params(run),
                                      (f.nparams,))[:] = params
        tsave = np.ctypeslib.as_array(p.tsave, (p.nsave,)).copy()
        y = np.empty((p.nsave, p.batch, f.dim))
        st = _lib.Stats()
        _check(_lib.nde.nde_run_solve(run, int(seed),
                                      y.ctypes.data_as(_lib.c_dbl_p),
                                      ctypes.byref(st)), ctx)
        stats = {name: getattr(st, name) for name, _ in _lib.Stats._fields_
                 if name != "status"}
        et = _lib.nde.nde_run_event_times(run)
        if et:
            stats["event_t"] = np.ctypeslib.as_array(et, (p.batch,)).copy()
        return tsave, y, stats
    finally:
        if run.value:
            _lib.nde.nde_run_destroy(run)
        _lib.nde.nde_ctx_destroy(ctx)


@dataclasses.dataclass(frozen=True)
class Step:
    """One training iteration's numbers (struct nde_train_step)."""
    iteration: int
    loss: float
    data_loss: float
    reg: float
    grad_norm: float
    data_grad_norm: float
    nfe_forward: int
    nfe_backward: int
    steps_accepted: int
    steps_rejected: int
    time_s: float
    failed: str  # "" or the status an on_failure policy absorbed


_STEP_FIELDS = [f.name for f in dataclasses.fields(Step)]


class Trainer:
    """A model with its data, solver, adjoint and optimizer, composed from
    a Config ([field], [solver], [adjoint], [data], [train]).

    The trainer writes no files by itself: [train] checkpoint and metrics
    are the `nde` program's; use save() and the arrays train() returns.
    predict_rows: the most rows predict() must take beyond the training
    batch (default: the rows of [problem] y0, if the config has one; a
    [problem] section is then checked as solve() reads it).
    """

    def __init__(self, config, predict_rows=None):
        if not isinstance(config, Config):
            raise TypeError("nde.Trainer needs an nde.Config")
        self._tr = None
        self._ctx = _new_ctx()
        self.config = config
        if predict_rows is None:
            predict_rows = self._problem_rows()
        elif not 0 <= int(predict_rows) < 1 << 31:
            raise ValueError("nde: predict_rows must be in [0, 2^31)")
        tr = ctypes.c_void_p()
        _check(_lib.train.nde_trainer_create(self._ctx, config._cfg,
                                             int(predict_rows),
                                             ctypes.byref(tr)), self._ctx)
        self._tr = tr.value
        config._frozen = True
        self.dim = _lib.train.nde_trainer_field(self._tr).contents.dim

    def __del__(self):
        if getattr(self, "_tr", None):
            _lib.train.nde_trainer_destroy(self._tr)
        if getattr(self, "_ctx", None):
            _lib.nde.nde_ctx_destroy(self._ctx)

    def _problem_rows(self):
        """Rows of [problem] y0, checked against the problem keys; 0
        without [problem]."""
        sec = _lib.nde.nde_config_section(self.config._cfg, b"problem")
        if not sec:
            return 0
        tables = (ctypes.c_void_p * 2)(_lib.problem_keys, None)
        y0 = _lib.c_dbl_p()
        rows, cols = _lib.c_size(), _lib.c_size()
        _check(_lib.nde.nde_section_check(sec, tables, self._ctx), self._ctx)
        _check(_lib.nde.nde_get_matrix(sec, b"y0", ctypes.byref(y0),
                                       ctypes.byref(rows), ctypes.byref(cols),
                                       self._ctx), self._ctx)
        _lib.libc.free(ctypes.cast(y0, ctypes.c_void_p))
        return rows.value

    @classmethod
    def load(cls, path, overrides=None):
        """A trainer resumed from a checkpoint written by save() or the
        `nde` program: its config (with `overrides`, {"section.key":
        value}, only those a resume allows, e.g. train.iterations),
        parameters, optimizer state and iteration."""
        ctx = _new_ctx()
        text = ctypes.c_void_p()
        try:
            _check(_lib.train.nde_checkpoint_read_config(
                os.fsencode(path), ctypes.byref(text), ctx), ctx)
            config = Config.from_string(
                ctypes.string_at(text.value).decode(), str(path))
        finally:
            _lib.libc.free(text)
            _lib.nde.nde_ctx_destroy(ctx)
        for key, value in (overrides or {}).items():
            config.set(key, value)
        tr = cls(config)
        _check(_lib.train.nde_trainer_checkpoint_load(
            tr._tr, os.fsencode(path), _lib.CHECKPOINT_RESUME), tr._ctx)
        return tr

    # -- training

    def step(self):
        """One iteration (a mini-batch, forward solve, adjoint, Adam);
        returns its Step. A failed solve raises nde.Error unless [train]
        on_failure absorbs it (then Step.failed names it)."""
        m = _lib.TrainStep()
        _check(_lib.train.nde_trainer_step(self._tr, ctypes.byref(m)),
               self._ctx)
        values = {f: getattr(m, f) for f in _STEP_FIELDS if f != "failed"}
        values["failed"] = (_lib.nde.nde_status_name(m.failed).decode()
                            if m.failed else "")
        return Step(**values)

    def train(self, iterations=None, callback=None):
        """Run `iterations` steps (default: what remains of [train]
        iterations), calling callback(step) after each; a callback that
        returns False stops the run (None goes on). Returns the steps
        taken as numpy arrays, one per Step field ("loss",
        "grad_norm", ...; "failed" as a list of strings)."""
        if iterations is None:
            iterations = max(0, self.settings["iterations"] - self.iteration)
        steps = []
        for _ in range(int(iterations)):
            s = self.step()
            steps.append(s)
            if callback is not None and callback(s) is False:
                break
        hist = {f: np.array([getattr(s, f) for s in steps],
                            dtype=float if f not in (
                                "iteration", "nfe_forward", "nfe_backward",
                                "steps_accepted", "steps_rejected")
                            else np.int64)
                for f in _STEP_FIELDS if f != "failed"}
        hist["failed"] = [s.failed for s in steps]
        return hist

    def evaluate(self):
        """Predict the held-out set with the current parameters:
        {"test_loss", "test_accuracy" (NaN for series), "nfe", "time_s"}."""
        r = _lib.EvalResult()
        _check(_lib.train.nde_trainer_evaluate(self._tr, ctypes.byref(r)),
               self._ctx)
        return {"test_loss": r.test_loss, "test_accuracy": r.test_accuracy,
                "nfe": r.nfe, "time_s": r.time_s}

    def test_series(self):
        """The held-out series as (id, t, prediction (n x dim)) of the last
        evaluate(); copies."""
        out = []
        for i in range(_lib.train.nde_trainer_ntest(self._tr)):
            sid, t, pred = ctypes.c_char_p(), _lib.c_dbl_p(), _lib.c_dbl_p()
            n = _lib.train.nde_trainer_test_series(
                self._tr, i, ctypes.byref(sid), ctypes.byref(t),
                ctypes.byref(pred))
            tt = np.ctypeslib.as_array(t, (n,)).copy() if n else np.empty(0)
            pp = (np.ctypeslib.as_array(pred, (n, self.dim)).copy()
                  if n and pred else np.full((n, self.dim), math.nan))
            out.append(((sid.value or b"").decode(), tt, pp))
        return out

    def test_classes(self):
        """Classification tasks: (labels (ntest ints), probabilities
        (ntest x C)) of the last evaluate(); copies. None for tasks that
        do not classify."""
        label = ctypes.POINTER(ctypes.c_int)()
        prob = _lib.c_dbl_p()
        C = _lib.train.nde_trainer_test_classes(self._tr, ctypes.byref(label),
                                                ctypes.byref(prob))
        if C == 0:
            return None
        n = _lib.train.nde_trainer_ntest(self._tr)
        return (np.ctypeslib.as_array(label, (n,)).astype(np.int64),
                np.ctypeslib.as_array(prob, (n, C)).copy())

    @property
    def regularizers(self):
        """Each regularizer of the last training solve, in order, as
        {"name", "value" (unweighted R), "weight", "grad_norm"} (NaN
        before the first step)."""
        out = []
        for i in range(_lib.train.nde_trainer_nregularizers(self._tr)):
            value = _lib.c_dbl()
            name = _lib.train.nde_trainer_regularizer(self._tr, i,
                                                      ctypes.byref(value))
            out.append({
                "name": name.decode(), "value": value.value,
                "weight": _lib.train.nde_trainer_regularizer_weight(
                    self._tr, i),
                "grad_norm": _lib.train.nde_trainer_regularizer_grad_norm(
                    self._tr, i)})
        return out

    # -- the model

    @property
    def iteration(self):
        """Iterations done."""
        return _lib.train.nde_trainer_iteration(self._tr)

    @property
    def params(self):
        """theta, the trained parameters (a copy). Assigning an array of
        as many finite values sets them (the optimizer's moments stay).
        With [train] average_from, once averaging has begun, predictions
        and evaluations use the running mean of theta instead (the
        `nde params` of the checkpoint)."""
        n = _lib.train.nde_trainer_nparams(self._tr)
        p = _lib.train.nde_trainer_params(self._tr)
        return np.ctypeslib.as_array(p, (n,)).copy() if n else np.empty(0)

    @params.setter
    def params(self, values):
        n = _lib.train.nde_trainer_nparams(self._tr)
        values = np.asarray(values, dtype=float)
        if values.shape != (n,):
            raise ValueError("nde: params must be %d values, got shape %s"
                             % (n, values.shape))
        if not np.all(np.isfinite(values)):
            raise ValueError("nde: params must be finite")
        if n:
            np.ctypeslib.as_array(_lib.train.nde_trainer_params(self._tr),
                                  (n,))[:] = values

    @property
    def param_names(self):
        """The name of each entry of params (e.g. "W1[3,0]")."""
        buf = ctypes.create_string_buffer(256)
        names = []
        for i in range(_lib.train.nde_trainer_nparams(self._tr)):
            _lib.train.nde_trainer_param_name(self._tr, i, buf, len(buf))
            names.append(buf.value.decode())
        return names

    @property
    def settings(self):
        """[train] as read: iterations, batch_size, lr, seed, ..."""
        s = _lib.train.nde_trainer_settings(self._tr).contents
        d = {name: getattr(s, name) for name, _ in _lib.Settings._fields_}
        for k in ("checkpoint", "metrics"):
            d[k] = d[k].decode() if d[k] else None
        return d

    @property
    def totals(self):
        """Running totals: nfe_forward, nfe_backward, time_s, failures,
        lr_scale."""
        t = _lib.train.nde_trainer_totals(self._tr).contents
        return {name: getattr(t, name) for name, _ in _lib.Totals._fields_}

    def _rows_and_saves(self, t0, y0, t1, tsave):
        y0 = np.ascontiguousarray(y0, dtype=float)
        if y0.ndim == 1:
            y0 = y0[None, :]
        if y0.ndim != 2 or y0.shape[1] != self.dim or y0.shape[0] == 0:
            raise ValueError("nde: y0 must be rows x %d, got shape %s"
                             % (self.dim, y0.shape))
        if np.ndim(tsave) == 0:
            tsave = np.linspace(t0, t1, int(tsave))
        tsave = np.ascontiguousarray(tsave, dtype=float)
        if tsave.ndim != 1 or tsave.size == 0:
            raise ValueError("nde: tsave must be save times or their number")
        return y0, tsave, np.empty((tsave.size, y0.shape[0], self.dim))

    def predict(self, t0, y0, t1, tsave):
        """Solve the trained model from y0 (rows x dim, or one state of
        dim values) at t0 to t1; tsave: the save times (in [t0, t1], in
        order) or their number (evenly spaced, both ends included).
        Returns y (len(tsave) x rows x dim). An SDE model is solved
        through the evaluation's fixed Brownian path (sample() draws
        others)."""
        y0, tsave, y = self._rows_and_saves(t0, y0, t1, tsave)
        st = _lib.Stats()
        _check(_lib.train.nde_trainer_predict(
            self._tr, float(t0), y0.ctypes.data_as(_lib.c_dbl_p),
            y0.shape[0], float(t1), tsave.size,
            tsave.ctypes.data_as(_lib.c_dbl_p),
            y.ctypes.data_as(_lib.c_dbl_p), ctypes.byref(st)), self._ctx)
        return y

    def intervene(self, values):
        """Predict (predict, sample, evaluate, solve) under do(y_j = v)
        from now on: values is {state index: v} (data units), or None to
        end it. The held states start at v and their derivative and
        diffusion are 0, whatever the field."""
        if values is None:
            _check(_lib.train.nde_trainer_intervene(self._tr, None),
                   self._ctx)
            return
        v = np.full(self.dim, math.nan)
        for j, value in dict(values).items():
            if not 0 <= int(j) < self.dim:
                raise ValueError("nde: intervene: no state %r (0..%d)"
                                 % (j, self.dim - 1))
            if not math.isfinite(float(value)):
                raise ValueError("nde: intervene: state %d: %r is not a "
                                 "finite number" % (int(j), value))
            v[int(j)] = float(value)
        _check(_lib.train.nde_trainer_intervene(
            self._tr, v.ctypes.data_as(_lib.c_dbl_p)), self._ctx)

    def sample(self, t0, y0, t1, tsave, seed=1):
        """SDE models: paths from y0 (one per row) as predict() takes
        them, through the Brownian path of `seed` (the same seed, the same
        paths). Returns y (len(tsave) x rows x dim); nde.Error for an ODE
        model."""
        if not 0 <= int(seed) < 1 << 64:
            raise ValueError("nde: seed must be in [0, 2^64)")
        y0, tsave, y = self._rows_and_saves(t0, y0, t1, tsave)
        st = _lib.Stats()
        _check(_lib.train.nde_trainer_sample(
            self._tr, int(seed), float(t0), y0.ctypes.data_as(_lib.c_dbl_p),
            y0.shape[0], float(t1), tsave.size,
            tsave.ctypes.data_as(_lib.c_dbl_p),
            y.ctypes.data_as(_lib.c_dbl_p), ctypes.byref(st)), self._ctx)
        return y

    def solve(self):
        """predict() on the config's [problem] (t0, y0, t1, saveat or
        nsave): returns (tsave, y (nsave x rows x dim)). Untrained, the
        parameters are the trainer's initial ones ([train] seed), not
        those of `nde solve` ([field] seed)."""
        sec = _lib.nde.nde_config_section(self.config._cfg, b"problem")
        if not sec:
            raise Error("NDE_ECONFIG", "missing section [problem]")
        p = _lib.Problem()
        _check(_lib.nde.nde_problem_from_section(ctypes.byref(p), sec,
                                                 self.dim, self._ctx),
               self._ctx)
        try:
            y0 = np.ctypeslib.as_array(p.y0, (p.batch, p.dim)).copy()
            tsave = np.ctypeslib.as_array(p.tsave, (p.nsave,)).copy()
            t0, t1 = p.t0, p.t1
        finally:
            _lib.nde.nde_problem_free(ctypes.byref(p))
        return tsave, self.predict(t0, y0, t1, tsave)

    def save(self, path):
        """Write a checkpoint (as the `nde` program's: `nde predict PATH`
        and Trainer.load read it), atomically: a temporary file renamed
        into place."""
        path = os.fspath(path)
        tmp = "%s.tmp%d" % (path, os.getpid())
        fp = _lib.libc.fopen(os.fsencode(tmp), b"wb")
        if not fp:
            raise Error("NDE_EIO", "%s: cannot open: %s"
                        % (tmp, os.strerror(ctypes.get_errno() or 5)))
        try:
            rc = _lib.train.nde_trainer_checkpoint_write(self._tr, fp)
        finally:
            closed = _lib.libc.fclose(fp)
        if rc == _lib.OK and closed != 0:
            os.unlink(tmp)
            raise Error("NDE_EIO", "%s: write failed" % tmp)
        if rc != _lib.OK:
            os.unlink(tmp)
            _check(rc, self._ctx)
        os.replace(tmp, path)
