"""ctypes declarations of the part of libnde and libnde-train the package uses.

The libraries are looked up, in order, in the directories of
$NDE_LIBRARY_PATH (colon-separated; a build tree: build/core:build/train),
else in the libdir `meson install` put them in (recorded in _paths.py at
install), else by the dynamic loader's own search (ldconfig,
LD_LIBRARY_PATH). The structs below mirror core/include/nde/*.h and
train/include/nde/train.h field for field: change them with the headers.
"""

import ctypes
import os

try:
    from . import _paths
except ImportError:  # the source tree: no install-time paths
    _paths = None

c_size = ctypes.c_size_t
c_dbl = ctypes.c_double
c_dbl_p = ctypes.POINTER(ctypes.c_double)


class TrainStep(ctypes.Structure):
    _fields_ = [("iteration", ctypes.c_long), ("loss", c_dbl),
                ("grad_norm", c_dbl), ("reg", c_dbl), ("data_loss", c_dbl),
                ("nfe_forward", ctypes.c_long),
                ("nfe_backward", ctypes.c_long),
                ("steps_accepted", ctypes.c_long),
                ("steps_rejected", ctypes.c_long), ("time_s", c_dbl),
                ("data_grad_norm", c_dbl), ("failed", ctypes.c_int)]


class EvalResult(ctypes.Structure):
    _fields_ = [("test_loss", c_dbl), ("test_accuracy", c_dbl),
                ("nfe", ctypes.c_long), ("time_s", c_dbl)]


class Totals(ctypes.Structure):
    _fields_ = [("nfe_forward", ctypes.c_long),
                ("nfe_backward", ctypes.c_long), ("time_s", c_dbl),
                ("failures", ctypes.c_long), ("lr_scale", c_dbl)]


class Settings(ctypes.Structure):
    _fields_ = [("iterations", ctypes.c_long), ("batch_size", ctypes.c_long),
                ("eval_every", ctypes.c_long),
                ("checkpoint_every", ctypes.c_long),
                ("lr", c_dbl), ("lr_decay", c_dbl), ("beta1", c_dbl),
                ("beta2", c_dbl), ("eps", c_dbl), ("weight_decay", c_dbl),
                ("clip", c_dbl), ("seed", ctypes.c_uint64),
                ("checkpoint", ctypes.c_char_p), ("metrics", ctypes.c_char_p),
                ("refuse_changed_data", ctypes.c_int),
                ("on_failure", ctypes.c_int),
                ("max_failures", ctypes.c_long),
                ("adversary_lr", c_dbl), ("adversary_clip", c_dbl),
                ("average_from", ctypes.c_long),
                ("optimizer", ctypes.c_int), ("rho", c_dbl)]


class Stats(ctypes.Structure):
    _fields_ = [("nfe", ctypes.c_long), ("nfe_backward", ctypes.c_long),
                ("steps_accepted", ctypes.c_long),
                ("steps_rejected", ctypes.c_long), ("retries", ctypes.c_long),
                ("h_min", c_dbl), ("h_max", c_dbl), ("status", ctypes.c_int)]


class FieldHead(ctypes.Structure):
    """The leading members of struct nde_field, up to nparams."""
    _fields_ = [("type", ctypes.c_void_p), ("ctx", ctypes.c_void_p),
                ("batch_max", c_size), ("dim", c_size), ("nparams", c_size)]


class Problem(ctypes.Structure):
    _fields_ = [("t0", c_dbl), ("t1", c_dbl), ("batch", c_size),
                ("dim", c_size), ("y0", c_dbl_p), ("nsave", c_size),
                ("tsave", c_dbl_p), ("ntstops", c_size),
                ("tstops", c_dbl_p)]


def _open(stem):
    """Load lib<stem>.so: see the module's docstring for where."""
    names = ["lib%s.so" % stem]
    if _paths is not None:
        names.insert(0, "lib%s.so.%s" % (stem, _paths.SOVERSION))
    env = os.environ.get("NDE_LIBRARY_PATH")
    if env:
        dirs = [d for d in env.split(os.pathsep) if d]
    elif _paths is not None and os.path.isdir(_paths.LIBDIR):
        dirs = [_paths.LIBDIR]
    else:
        dirs = [""]
    tried = []
    for d in dirs:
        for name in names:
            # Absolute: libnde finds the build tree's plugins by the path
            # it was loaded from, also after a chdir.
            path = os.path.abspath(os.path.join(d, name)) if d else name
            if d and not os.path.exists(path):
                tried.append(path)
                continue
            try:
                # GLOBAL: libnde-train's libnde is then the one loaded here.
                return ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError as e:
                tried.append("%s (%s)" % (path, e))
    raise ImportError("nde: cannot load lib%s (set NDE_LIBRARY_PATH to the "
                      "directories of libnde and libnde-train); tried: %s"
                      % (stem, ", ".join(tried)))


def _declare(lib, name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)


nde = _open("nde")
train = _open("nde-train")
# The process's global scope, not libc.so.6's own: its free() must be the
# one libnde's malloc() pairs with (a preloaded sanitizer's, say).
libc = ctypes.CDLL(None, use_errno=True)

P = ctypes.c_void_p
S = ctypes.c_char_p
I = ctypes.c_int

for _name, _res, _args in [
    ("nde_version", S, ()),
    ("nde_status_name", S, (I,)),
    ("nde_ctx_create", P, ()),
    ("nde_ctx_destroy", None, (P,)),
    ("nde_ctx_message", S, (P,)),
    ("nde_config_create", P, ()),
    ("nde_config_destroy", None, (P,)),
    ("nde_config_load_file", I, (P, S, P)),
    ("nde_config_load_string", I, (P, S, S, P)),
    ("nde_config_override", I, (P, S, P)),
    ("nde_config_unset", I, (P, S, P)),
    ("nde_config_write", I, (P, P)),
    ("nde_config_write_canonical", I, (P, P)),
    ("nde_config_section", P, (P, S)),
    ("nde_section_check", I, (P, ctypes.POINTER(P), P)),
    ("nde_get_matrix", I, (P, S, ctypes.POINTER(c_dbl_p),
                           ctypes.POINTER(c_size), ctypes.POINTER(c_size),
                           P)),
    ("nde_problem_from_section", I, (ctypes.POINTER(Problem), P, c_size, P)),
    ("nde_problem_free", None, (ctypes.POINTER(Problem),)),
    ("nde_run_create", I, (P, P, ctypes.POINTER(P))),
    ("nde_run_destroy", None, (P,)),
    ("nde_run_field", ctypes.POINTER(FieldHead), (P,)),
    ("nde_run_problem", ctypes.POINTER(Problem), (P,)),
    ("nde_run_params", c_dbl_p, (P,)),
    ("nde_run_event_times", c_dbl_p, (P,)),
    ("nde_run_solve", I, (P, ctypes.c_uint64, c_dbl_p,
                          ctypes.POINTER(Stats))),
]:
    _declare(nde, _name, _res, *_args)

for _name, _res, _args in [
    ("nde_trainer_create", I, (P, P, c_size, ctypes.POINTER(P))),
    ("nde_trainer_destroy", None, (P,)),
    ("nde_trainer_settings", ctypes.POINTER(Settings), (P,)),
    ("nde_trainer_field", ctypes.POINTER(FieldHead), (P,)),
    ("nde_trainer_params", c_dbl_p, (P,)),
    ("nde_trainer_nparams", c_size, (P,)),
    ("nde_trainer_iteration", ctypes.c_long, (P,)),
    ("nde_trainer_totals", ctypes.POINTER(Totals), (P,)),
    ("nde_trainer_step", I, (P, ctypes.POINTER(TrainStep))),
    ("nde_trainer_evaluate", I, (P, ctypes.POINTER(EvalResult))),
    ("nde_trainer_ntest", c_size, (P,)),
    ("nde_trainer_test_series", c_size,
     (P, c_size, ctypes.POINTER(S), ctypes.POINTER(c_dbl_p),
      ctypes.POINTER(c_dbl_p))),
    ("nde_trainer_param_name", None, (P, c_size, S, c_size)),
    ("nde_trainer_test_classes", c_size,
     (P, ctypes.POINTER(ctypes.POINTER(I)), ctypes.POINTER(c_dbl_p))),
    ("nde_trainer_sample", I, (P, ctypes.c_uint64, c_dbl, c_dbl_p, c_size,
                               c_dbl, c_size, c_dbl_p, c_dbl_p,
                               ctypes.POINTER(Stats))),
    ("nde_trainer_intervene", I, (P, c_dbl_p)),
    ("nde_trainer_nregularizers", c_size, (P,)),
    ("nde_trainer_regularizer", S, (P, c_size, ctypes.POINTER(c_dbl))),
    ("nde_trainer_regularizer_weight", c_dbl, (P, c_size)),
    ("nde_trainer_regularizer_grad_norm", c_dbl, (P, c_size)),
    ("nde_trainer_predict", I, (P, c_dbl, c_dbl_p, c_size, c_dbl, c_size,
                                c_dbl_p, c_dbl_p, ctypes.POINTER(Stats))),
    ("nde_trainer_checkpoint_write", I, (P, P)),
    ("nde_trainer_checkpoint_load", I, (P, S, I)),
    ("nde_checkpoint_read_config", I, (S, ctypes.POINTER(P), P)),
]:
    _declare(train, _name, _res, *_args)

_declare(libc, "open_memstream", P, ctypes.POINTER(P), ctypes.POINTER(c_size))
_declare(libc, "fopen", P, S, S)
_declare(libc, "fclose", I, P)
_declare(libc, "free", None, P)

# The key table [problem] is checked against (an array in libnde).
problem_keys = ctypes.addressof(ctypes.c_char.in_dll(nde, "nde_problem_keys"))

OK = 0
ECONFIG = 5
EIO = 8
CHECKPOINT_RESUME = 1
