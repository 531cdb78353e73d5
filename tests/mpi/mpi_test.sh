#!/bin/sh
# mpi - nde over MPI ranks against one process (README: "Running on a
# cluster"), with 2 ranks on this machine:
#   - `mpirun -n 2 nde ab` reports the same numbers as `nde ab -j 2` (every
#     run's summary without its times and run id, the report's lines of the
#     metrics that are not times) and resumes: a removed run is redone, the
#     others are kept; a run that failed on rank 1 is in rank 0's report;
#   - `mpirun -n 2 nde train` with [train] shards = 3 and 4 ends with the
#     same parameters, bit for bit, as one process with those shards, and only
#     rank 0 writes (the metrics file is whole, once);
#   - a rank that fails alone ends the run: one message, a non-zero exit,
#     no hang (each mpirun under a timeout), both before training (a bad
#     config on rank 1) and inside a step (rank 1's solve fails);
#   - the shards keys refuse what they cannot do (no mpirun needed).
# Exit 77 (skipped) when nde has no MPI module or mpirun is missing.
#
# Usage: mpi_test.sh NDE SOURCE_ROOT
set -eu

nde=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
unset NDE_MPI

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

cp "$src/examples/spiral.ini" spiral.ini
short="-s train.iterations=30 -s train.eval_every=0 -s train.checkpoint_every=0"

# ---- refusals (one process) ----------------------------------------------
if "$nde" train spiral.ini $short -s train.shards=21 2>err.txt; then
    fail "shards > batch_size accepted"
fi
grep -q "shards.*at most batch_size" err.txt || fail "shards > batch_size: $(cat err.txt)"
if "$nde" train spiral.ini $short -s train.shards=2 \
       -s regularizer.k.plugin=kinetic -s regularizer.k.weight=1e-4 2>err.txt; then
    fail "shards with a regularizer accepted"
fi
grep -q "shards = 2: a sharded batch does not take regularizers" err.txt ||
    fail "shards with a regularizer: $(cat err.txt)"

# ---- skip without MPI ----------------------------------------------------
mpirun=$(command -v mpirun || true)
if [ -z "$mpirun" ] || [ ! -e "$(dirname "$nde")/nde-mpi.so" ]; then
    echo "SKIP: no mpirun or no nde-mpi.so (nde built without MPI)"
    exit 77
fi
run2() {
    # Open MPI refuses root without --allow-run-as-root; --oversubscribe
    # lets 2 ranks run on a machine with fewer free slots. Its own leaks
    # are not ours to find (LeakSanitizer in the sanitizer build).
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
        timeout 120 "$mpirun" --allow-run-as-root --oversubscribe \
        --mca btl self,vader "$@"
}

# ---- train: the same bits as one process ---------------------------------
# shards = 3 are dealt 0 | 1, 2 and 4 are dealt 0, 3 | 1, 2 (train.c,
# shard_owner): a rank's records are not consecutive shards
for S in 3 4; do
    cfg="$short -s train.batch_size=64 -s train.shards=$S"
    "$nde" train spiral.ini $cfg -s train.checkpoint=one.ckpt \
        -s train.metrics=one.jsonl >/dev/null 2>&1 || fail "one process trains"
    run2 -n 2 "$nde" train spiral.ini $cfg -s train.checkpoint=two.ckpt \
        -s train.metrics=two.jsonl >two.out 2>two.err ||
        fail "mpirun -n 2 nde train, shards = $S: $(cat two.err)"
    "$nde" params one.ckpt >one.params
    "$nde" params two.ckpt >two.params
    cmp -s one.params two.params ||
        fail "shards = $S: 2 ranks trained other parameters than 1 process: $(diff one.params two.params | head -5)"
    # the same loss every iteration, each line once (rank 0 alone wrote it)
    untime='s/"(predict_)?time_s": [^,}]*//g'
    sed -E "$untime" one.jsonl >one.m
    sed -E "$untime" two.jsonl >two.m
    cmp -s one.m two.m ||
        fail "shards = $S: the metrics of 2 ranks differ from 1 process's"
    [ "$(grep -c '"loss"' two.jsonl)" -eq 30 ] || fail "metrics lines: $(wc -l <two.jsonl)"
    [ "$(grep -c 'iterations in' two.err)" -eq 1 ] || fail "the end printed $(grep -c 'iterations in' two.err) times"
done
# more ranks than shards: refused by every rank, said once
if run2 -n 2 "$nde" train spiral.ini $short -s train.checkpoint= \
       -s train.metrics= >/dev/null 2>k.err; then
    fail "2 ranks on 1 shard accepted"
fi
[ "$(grep -c 'set shards to a multiple of the ranks' k.err)" -eq 1 ] ||
    fail "2 ranks on 1 shard: $(cat k.err)"

# ---- a rank that fails alone ---------------------------------------------
# before training: rank 1's config is bad (MPMD: a command line per rank)
set +e
run2 -n 1 "$nde" train spiral.ini $cfg -s train.checkpoint= : \
    -n 1 "$nde" train spiral.ini $cfg -s train.checkpoint= -s train.lr=-1 \
    >/dev/null 2>bad.err
code=$?
set -e
[ $code -ne 0 ] && [ $code -ne 124 ] || fail "a bad rank 1: exit $code: $(cat bad.err)"
[ "$(grep -c 'rank 1: .*\[train\] lr' bad.err)" -eq 1 ] || fail "a bad rank 1: $(cat bad.err)"
# inside a step: rank 1's solves fail (max_steps), rank 0's do not
set +e
run2 -n 1 "$nde" train spiral.ini $cfg -s train.checkpoint= : \
    -n 1 "$nde" train spiral.ini $cfg -s train.checkpoint= \
    -s solver.max_steps=1 >/dev/null 2>step.err
code=$?
set -e
[ $code -ne 0 ] && [ $code -ne 124 ] || fail "rank 1's solve fails: exit $code: $(cat step.err)"
grep -q "rank 1: forward solve" step.err || fail "rank 1's solve fails: $(cat step.err)"
[ "$(grep -c 'rank 1: forward solve' step.err)" -eq 1 ] ||
    fail "rank 1's failure said more than once: $(cat step.err)"

# ---- ab: the same report as -j 2, resumable --------------------------------
cat >ab.ini <<'INI'
[ab]
base = spiral.ini
seeds = 1, 2, 3
baseline = plain
metrics = test_loss, predict_nfe, train_nfe_forward, train_time_s
[arm.plain]
train.iterations = 20
[arm.slow]
train.iterations = 20
train.lr = 1e-3
INI
"$nde" ab ab.ini -j 2 -o one >one.txt 2>one.err || fail "nde ab -j 2: $(cat one.err)"
run2 -n 2 "$nde" ab ab.ini -o two >two.txt 2>two.err ||
    fail "mpirun -n 2 nde ab: $(cat two.err)"
summaries() {
    for f in "$1"/runs/*/seed*/summary.json; do
        echo "${f#$1/}"
        sed -E 's/"(train_time_s|predict_time_s|peak_rss_mb|run_id)": [^,}]*//g' "$f"
    done
}
summaries one >one.sum
summaries two >two.sum
[ "$(grep -c status one.sum)" -eq 6 ] || fail "nde ab -j 2 left $(grep -c status one.sum) summaries"
cmp -s one.sum two.sum || fail "the runs of 2 ranks differ: $(diff one.sum two.sum | head -5)"
grep -E 'test_loss|predict_nfe|train_nfe_forward' one.txt >one.rep
grep -E 'test_loss|predict_nfe|train_nfe_forward' two.txt >two.rep
[ -s one.rep ] && cmp -s one.rep two.rep || fail "the reports differ: $(diff one.rep two.rep)"
[ -f two/ab.json ] || fail "no ab.json from rank 0"
# resume: a removed run is redone, a kept one is not touched
rm -r two/runs/slow/seed2
touch -d '2001-01-01' two/runs/plain/seed1/summary.json
run2 -n 2 "$nde" ab ab.ini -o two >three.txt 2>three.err ||
    fail "mpirun -n 2 nde ab (resumed): $(cat three.err)"
[ -f two/runs/slow/seed2/summary.json ] || fail "the removed run was not redone"
[ "$(stat -c %Y two/runs/plain/seed1/summary.json)" = \
  "$(date -d '2001-01-01' +%s)" ] || fail "a finished run was run again"
grep -E 'test_loss|predict_nfe|train_nfe_forward' three.txt >three.rep
cmp -s one.rep three.rep || fail "the resumed report differs: $(diff one.rep three.rep)"
# a failed run of rank 1 (broken seed 2: the 6th run, rank 1's 3rd) is
# reported by rank 0 with its message
set +e
run2 -n 2 "$nde" ab ab.ini --arm broken:solver.max_steps=1 --seeds 1,2 \
    -o four >four.txt 2>four.err
code=$?
set -e
[ $code -eq 1 ] || fail "a failed run: exit $code: $(cat four.err)"
[ "$(grep -c '^failed: broken seed [12]: .*max_steps = 1 reached' four.txt)" -eq 2 ] ||
    fail "the failed runs are not reported: $(cat four.txt four.err)"
echo "ok"
