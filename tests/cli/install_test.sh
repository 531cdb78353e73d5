#!/bin/bash
# Install nde into a staging directory, build the out-of-tree example
# plugins (plugins/example) against the installed nde.pc outside the build
# tree, run the installed `nde check` on them, and solve with the field.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR PREFIX LIBDIR_ABS SANITIZE
set -euo pipefail
build=$1 src=$2 prefix=$3 libdir=$4 sanitize=$5

# A sanitized libnde needs the sanitizer runtime in the programs that load
# it, so a sanitized build builds the user's plugin and checker that way.
if [ "$sanitize" != none ]; then
    export CFLAGS="-O1 -g -fsanitize=$sanitize -fno-omit-frame-pointer"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/nde-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
stage=$tmp/stage

fail() { echo "install_test: FAIL: $*" >&2; exit 1; }

DESTDIR=$stage meson install -C "$build" --no-rebuild --quiet

nde=$stage$prefix/bin/nde
[ -x "$nde" ] || fail "no installed program at $nde"
# pkg-config reads the installed nde.pc; the sysroot maps its /usr/local
# paths into the staging directory.
export PKG_CONFIG_PATH=$stage$libdir/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$stage
export LD_LIBRARY_PATH=$stage$libdir
pkg-config --exists nde || fail "pkg-config does not find the installed nde.pc"
# The installed program must run on the installed library, not the build's.
# Outputs are captured before grep: under pipefail, `prog | grep -q` fails
# at random when grep exits before prog's last write (SIGPIPE).
libs=$(ldd "$nde")
grep -q "$stage$libdir/libnde" <<<"$libs" ||
    fail "installed nde does not use the installed libnde: $(grep nde <<<"$libs")"

# nde ab's statistics and plots are the program's (cli/ab/), not libnde's.
[ -z "$(find "$stage" -path '*/include/nde/ab.h')" ] ||
    fail "nde/ab.h is installed"
syms=$(nm -D --defined-only "$stage$libdir/libnde.so")
! grep -q 'nde_ab_' <<<"$syms" || fail "libnde exports nde_ab_* symbols"
! grep -q 'plplot' <<<"$(ldd "$stage$libdir/libnde.so")" ||
    fail "libnde links PLplot"

# libnde-train (nde-train.pc) for programs that train; nde.pc, what
# plugins use, does not link it, and <nde/nde.h> does not declare it.
pkg-config --exists nde-train || fail "no installed nde-train.pc"
! grep -q nde-train <<<"$(pkg-config --libs nde)" ||
    fail "nde.pc links libnde-train"
cat > "$tmp/trainer.c" <<'C'
#include <nde/train.h>
#include <nde/data.h>
int main(void)
{
    const double y[] = {0, 2}, M[] = {1}, V[] = {2};
    return nde_moments_loss(y, 1, 2, 1, M, V, 0, 0, 0) == 0 &&
           nde_data_keys[0].name ? 0 : 1;
}
C
# shellcheck disable=SC2046,SC2086 # pkg-config's flags are words
${CC:-cc} -std=gnu11 -Wall -Werror ${CFLAGS:-} $(pkg-config --cflags nde-train) \
    -o "$tmp/trainer" "$tmp/trainer.c" $(pkg-config --libs nde-train) ||
    fail "a program does not build against nde-train.pc"
"$tmp/trainer" || fail "a program linked with nde-train.pc does not run"
cat > "$tmp/plugin.c" <<'C'
#include <nde/nde.h>
nde_trainer *not_declared;
C
! ${CC:-cc} -std=gnu11 -c $(pkg-config --cflags nde) -o "$tmp/plugin.o" \
    "$tmp/plugin.c" 2>/dev/null || fail "<nde/nde.h> declares the trainer"

cp -r "$src/plugins/example" "$tmp/example"
rm -f "$tmp/example"/*.so
make -s -C "$tmp/example" || fail "the example plugins do not build"
for so in vanderpol endnorm midpoint damped; do
    [ -f "$tmp/example/$so.so" ] || fail "make built no $so.so"
done

export NDE_PLUGIN_PATH=$tmp/example:$stage$libdir/nde/plugins
listing=$("$nde" plugins field) || fail "nde plugins field exits non-zero"
grep -q "^  vanderpol - " <<<"$listing" ||
    fail "nde plugins does not list vanderpol"
grep -q "^  endnorm - " <<<"$("$nde" plugins regularizer)" ||
    fail "nde plugins does not list endnorm"
grep -q "^  damped - " <<<"$("$nde" plugins task)" ||
    fail "nde plugins does not list damped"
# The shipped fields (plugins/fields/ in the source) install flat into the
# plugin directory.
for f in expr linear mlp sum; do
    grep -qx "      module: $stage$libdir/nde/plugins/$f.so (version [^)]*)" \
        <<<"$listing" ||
        fail "nde plugins does not list the installed $f.so"
done
# The conformance suites of the installed program, on each example.
checks=$(make -s -C "$tmp/example" NDE="$nde" check) ||
    fail "nde check fails on an example plugin: $checks"
for what in "check field vanderpol" "check regularizer endnorm" \
    "check solver midpoint" "check task damped"; do
    grep -q "^nde $what\$" <<<"$checks" || fail "make check did not run nde $what"
done
[ "$(grep -c '^[0-9]* checks, 0 failed$' <<<"$checks")" -eq 4 ] ||
    fail "nde check on the examples: $checks"
# The task plugins (plugins/tasks/) load with the installed libnde-train.
tasks=$("$nde" plugins task) || fail "nde plugins task exits non-zero"
for f in windows moments series classify; do
    grep -qx "      module: $stage$libdir/nde/plugins/$f.so (version [^)]*)" \
        <<<"$tasks" || fail "nde plugins does not list the installed $f.so"
done

cd "$tmp"
"$nde" solve example/vanderpol.ini -o out.csv --stats-json stats.json ||
    fail "nde solve example/vanderpol.ini"
[ "$(head -n 1 out.csv)" = "t,x,v" ] || fail "header: $(head -n 1 out.csv)"
[ "$(wc -l < out.csv)" -eq 12 ] || fail "expected 11 rows + header"
grep -q '"status": "NDE_OK"' stats.json || fail "stats: $(cat stats.json)"

# Independent reference: classical RK4, h = 1e-4, in awk, to t = 10.
ref=$(awk 'BEGIN {
    mu = 1; x = 2; v = 0; h = 1e-4
    for (s = 0; s < 100000; s++) {
        k1x = v;            k1v = mu*(1-x*x)*v - x
        ax = x + h/2*k1x;   av = v + h/2*k1v
        k2x = av;           k2v = mu*(1-ax*ax)*av - ax
        ax = x + h/2*k2x;   av = v + h/2*k2v
        k3x = av;           k3v = mu*(1-ax*ax)*av - ax
        ax = x + h*k3x;     av = v + h*k3v
        k4x = av;           k4v = mu*(1-ax*ax)*av - ax
        x += h/6*(k1x + 2*k2x + 2*k3x + k4x)
        v += h/6*(k1v + 2*k2v + 2*k3v + k4v)
    }
    printf "%.17g %.17g\n", x, v }')
last=$(tail -n 1 out.csv)
awk -v ref="$ref" -v last="$last" 'BEGIN {
    split(ref, r, " "); split(last, c, ",")
    if (c[1] != 10) { print "last time " c[1]; exit 1 }
    for (i = 1; i <= 2; i++) {
        d = c[i+1] - r[i]; if (d < 0) d = -d
        if (d > 1e-6 * (r[i] < 0 ? -r[i] : r[i]) + 1e-8) {
            printf "y(10)[%d] = %.17g, reference %.17g\n", i, c[i+1], r[i]
            exit 1
        }
    }
}' || fail "vanderpol solution differs from the RK4 reference"

# The plugin's key takes overrides: mu = 0 is the harmonic oscillator,
# x(t) = 2 cos t.
"$nde" solve example/vanderpol.ini -s field.mu=0 -s problem.nsave=2 \
    -o harmonic.csv || fail "solve with mu = 0"
awk -F, 'NR == 3 { d = $2 - 2*cos(10); if (d < 0) d = -d
                   if (d > 1e-7) { print "x(10) = " $2; exit 1 } }' \
    harmonic.csv || fail "mu = 0 does not give 2 cos t"
# The task trains with the installed trainer.
trained=$("$nde" train example/damped.ini -s train.iterations=20 \
    -s train.eval_every=20 2>&1) || fail "nde train example/damped.ini: $trained"
grep -q "test_loss" <<<"$trained" || fail "no test_loss: $trained"
echo "install_test: ok"
