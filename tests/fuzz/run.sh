#!/bin/bash
# Run every libFuzzer target of BUILD (a build configured with
# `CC=clang meson setup BUILD -Dfuzz=true -Db_sanitize=address,undefined
# -Db_lundef=false`) for SECONDS each, two at a time, starting from the
# corpus in this directory. New inputs go to a scratch directory, not into
# the repository; a finding prints the input (base64) and its report and
# fails the run. `tests/fuzz/run.sh build-fuzz 600` is the longer run by hand.
set -euo pipefail
build=${1:?usage: run.sh BUILD SECONDS}
seconds=${2:?usage: run.sh BUILD SECONDS}
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

export ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1

# fuzz NAME: one target for `seconds`; its output in $scratch/NAME.log.
fuzz() {
    local name=$1 work=$scratch/$1
    mkdir -p "$work/corpus" "$work/findings"
    if "$build/tests/fuzz/fuzz_$name" -max_total_time="$seconds" \
        -timeout=10 -rss_limit_mb=1024 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$work/findings/" \
        "$work/corpus" "$here/corpus/$name" >"$scratch/$name.log" 2>&1; then
        echo "fuzz_$name: no finding in ${seconds} s ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/$name.log" | grep -o '[0-9]*$') runs)"
        return 0
    fi
    echo "fuzz_$name: FINDING"
    tail -n 60 "$scratch/$name.log"
    for f in "$work/findings"/*; do
        [ -e "$f" ] && { echo "input $(basename "$f") (base64):"; base64 "$f"; }
    done
    return 1
}

status=0
targets=(config csv idx checkpoint)
for ((i = 0; i < ${#targets[@]}; i += 2)); do
    pids=()
    for name in "${targets[@]:i:2}"; do
        fuzz "$name" & pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || status=1
    done
done
exit $status
