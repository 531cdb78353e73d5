#!/bin/sh
# golden - the outputs of the examples, recorded before issue 11 moves the
# solve loop and the trainer: `nde train` (summary JSON, metrics file, the
# parameters it prints), `nde predict` on its checkpoint (CSV, summary) and
# `nde solve` (CSV, statistics) of every examples/*.ini that they take,
# shortened to a few iterations. Outputs must stay bit-identical: numbers
# are compared as the exact text the program prints (17 significant
# digits; 9 in the classification CSV, 10 in the printed parameters).
#
# Only what no machine can change is compared. Removed before storing and
# comparing: the wall-clock fields (time_s, train_time_s, predict_time_s);
# stderr, which carries times, is not compared. mlp fields run with
# field.kernels = generic: auto picks avx512 or avx2 per CPU, whose sums
# are grouped otherwise and use FMA. Every mlp layer here is at most
# thin_width (64) wide on one side, so OpenBLAS dgemm, whose kernels
# differ per CPU (OPENBLAS_CORETYPE), is never called. glibc's libm picks
# exp, log, pow, sin, ... per CPU too (ifuncs: FMA/AVX2, FMA4, AVX or
# SSE2 builds, which differ in the last bit on about 1 argument in 1500;
# the step size controller and the SDE noise call them), so GLIBC_TUNABLES
# masks those features and every x86-64 CPU runs the SSE2 builds. The
# numbers are those of Debian 12's glibc 2.36 (CI's); another libm may
# differ. NDE_PLUGIN_PATH is unset so that only the shipped plugins run.
#
# Regenerate (only for a change meant to alter these numbers; the commit
# message must say which outputs change and why):
#     NDE_GOLDEN_UPDATE=1 meson test -C build --suite golden
# rewrites tests/golden/expected/.
#
# Usage: golden.sh NDE SOURCE_ROOT
set -eu

nde=$1
src=$2
examples=$src/examples
expected=$src/tests/golden/expected
fmnist=/usr/share/datasets/fashion-mnist
unset NDE_PLUGIN_PATH
GLIBC_TUNABLES=${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}glibc.cpu.hwcaps=-AVX,-AVX2,-FMA,-FMA4
export GLIBC_TUNABLES

work=$(mktemp -d "${TMPDIR:-/tmp}/nde-golden.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/out"
cd "$work"

fail() {
    echo "golden: $*" >&2
    exit 1
}

# JSON of FILE without its wall-clock fields (keys ending in time_s), the
# machine's memory (peak_rss_mb) and the run's random id (run_id).
strip_times() {
    sed -E 's/, "([a-z_]*time_s|peak_rss_mb|run_id)": [^,}]*//g;
            s/"([a-z_]*time_s|peak_rss_mb|run_id)": [^,}]*, //g' "$1"
}

# train NAME INI [-s KEY=VALUE]...: out/NAME.{summary.json,metrics.jsonl,
# stdout} (stdout: the parameters of a model with at most 16); leaves
# NAME.ckpt for predict.
train() {
    name=$1
    ini=$2
    shift 2
    "$nde" train "$examples/$ini" --quiet --summary-json "$name.summary" \
        -s "train.checkpoint=$name.ckpt" -s "train.metrics=$name.metrics" \
        "$@" >"out/$name.stdout" 2>"$name.train.err" ||
        { cat "$name.train.err" >&2; fail "$name: nde train failed"; }
    strip_times "$name.summary" >"out/$name.summary.json"
    strip_times "$name.metrics" >"out/$name.metrics.jsonl"
}

# predict NAME TAG [ARG]...: out/NAME.TAG.{csv,json} from NAME.ckpt.
predict() {
    name=$1
    tag=$2
    shift 2
    "$nde" predict "$name.ckpt" -o "out/$name.$tag.csv" \
        --summary-json "$name.$tag.summary" "$@" 2>"$name.$tag.err" ||
        { cat "$name.$tag.err" >&2; fail "$name: nde predict failed"; }
    strip_times "$name.$tag.summary" >"out/$name.$tag.json"
}

# solve NAME INI [-s KEY=VALUE]...: out/NAME.solve.{csv,json}.
solve() {
    name=$1
    ini=$2
    shift 2
    "$nde" solve "$examples/$ini" -o "out/$name.solve.csv" \
        --stats-json "out/$name.solve.json" "$@" 2>"$name.solve.err" ||
        { cat "$name.solve.err" >&2; fail "$name: nde solve failed"; }
}

generic='field.kernels=generic'

train spiral spiral.ini -s $generic \
    -s train.iterations=20 -s train.eval_every=10
predict spiral predict
solve spiral spiral.ini -s $generic

train lotka_volterra_fit lotka_volterra_fit.ini \
    -s train.iterations=20 -s train.eval_every=10
predict lotka_volterra_fit predict
solve lotka_volterra_fit lotka_volterra_fit.ini

solve lotka_volterra lotka_volterra.ini

solve ude ude.ini -s field.correction.kernels=generic

train sde_ou sde_ou.ini -s $generic \
    -s train.iterations=20 -s train.eval_every=10
predict sde_ou predict
predict sde_ou paths --paths 5 --seed 3

train sde_ou_params sde_ou_params.ini \
    -s train.iterations=20 -s train.eval_every=10
predict sde_ou_params predict

train latent_ode latent_ode.ini -s $generic \
    -s data.ntrain=60 -s data.ntest=10 -s data.npoints=30 -s data.nobs=10 \
    -s train.batch_size=20 \
    -s train.iterations=6 -s train.eval_every=3
predict latent_ode predict

# fashion_mnist needs Debian's dataset-fashion-mnist (installed in CI).
if [ -d "$fmnist" ]; then
    train fashion_mnist fashion_mnist.ini -s $generic \
        -s data.limit=256 -s data.test_limit=100 \
        -s train.iterations=4 -s train.eval_every=2
    predict fashion_mnist predict
    # On two threads, every call split (the mlp's, the encoder's, the
    # backward solve's vector operations): the same bits.
    train fashion_mnist_threads fashion_mnist.ini -s $generic \
        -s data.limit=256 -s data.test_limit=100 \
        -s train.iterations=4 -s train.eval_every=2 \
        -s field.threads=2 -s field.thread_batch=1
    for f in summary.json metrics.jsonl stdout; do
        cmp -s "out/fashion_mnist.$f" "out/fashion_mnist_threads.$f" ||
            fail "fashion_mnist: $f on 2 threads differs from 1 thread"
    done
    rm out/fashion_mnist_threads.*
else
    echo "SKIP fashion_mnist: $fmnist absent (Debian package" \
         "dataset-fashion-mnist)" >&2
    [ -z "${NDE_GOLDEN_UPDATE:-}" ] ||
        fail "cannot regenerate without $fmnist"
    cp "$expected"/fashion_mnist.* out/
fi

if [ -n "${NDE_GOLDEN_UPDATE:-}" ]; then
    rm -rf "$expected"
    cp -R out "$expected"
    echo "golden: rewrote $expected" >&2
    exit 0
fi
diff -ru "$expected" out >&2 ||
    fail "outputs differ from $expected (see the diff above; if the change" \
         "is meant, regenerate as the comment at the top of golden.sh says)"
echo "golden: $(ls out | wc -l) outputs identical" >&2
