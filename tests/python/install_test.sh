#!/bin/bash
# The installed Python package: install into a staging directory, then in
# Python import it from there, check it loads the installed libraries (not
# the build tree's) and train the spiral example for a few iterations with
# the installed plugins.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR PYTHON LIBDIR_ABS [PRELOAD]
# PRELOAD: the sanitizer runtime a sanitized libnde needs in Python.
set -euo pipefail
build=$1 src=$2 python=$3 libdir=$4 preload=${5:-}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nde-pyinstall-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
stage=$tmp/stage
fail() { echo "python install_test: FAIL: $*" >&2; exit 1; }

DESTDIR=$stage meson install -C "$build" --no-rebuild --quiet
init=$(find "$stage" -path '*/nde/__init__.py')
[ -n "$init" ] || fail "no nde/__init__.py installed"
[ -f "$(dirname "$init")/_lib.py" ] || fail "no nde/_lib.py installed"

# The staged libraries stand in for $libdir (where _paths.py says they go).
cd "$tmp"
NDE_LIBRARY_PATH=$stage$libdir NDE_PLUGIN_PATH=$stage$libdir/nde/plugins \
PYTHONPATH=$(dirname "$(dirname "$init")") PYTHONDONTWRITEBYTECODE=1 \
LD_PRELOAD=$preload "$python" - "$src/examples/spiral.ini" "$stage" "$libdir" <<'PY' ||
import sys
import nde
from nde import _paths
spiral, stage, libdir = sys.argv[1:]
staged = stage + libdir
assert nde.__file__.startswith(stage + "/"), nde.__file__
assert _paths.LIBDIR == libdir, (_paths.LIBDIR, libdir)
maps = open("/proc/self/maps").read()
for lib in ("libnde.so", "libnde-train.so"):
    mine = [l for l in maps.splitlines() if "/" + lib in l]
    assert mine and all(staged in l for l in mine), (lib, mine)
cfg = nde.Config.from_file(spiral).set("train.iterations", 3)
tr = nde.Trainer(cfg)
hist = tr.train()
assert len(hist["loss"]) == 3 and all(hist["loss"] > 0), hist
assert staged in [l for l in open("/proc/self/maps").read().splitlines()
                  if "/mlp.so" in l][0]
print("python install_test: ok")
PY
    fail "the installed package does not train"
