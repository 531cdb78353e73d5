#!/bin/sh
# How vdp20.csv and vdp10.csv were made (kept for the record; the CSVs
# are what the examples read): 16 series of truth.ini (mu = MU, t in
# [0, T1]), 41 points each,
# Gaussian noise of sd 0.05 on every point but the first (Box-Muller on
# awk's rand(), seeded per series: the digits depend on the awk; these
# came from Debian's mawk 1.3.4).
# Usage: sh make_data.sh NDE [MU T1] > FILE   (NDE: the nde program)
#   vdp20.csv: MU = 20, T1 = 30 (the defaults); vdp10.csv: MU = 10, T1 = 20
set -e
nde=${1:?usage: make_data.sh path/to/nde [mu t1]}
mu=${2:-20}
t1=${3:-30}
dir=$(dirname "$0")
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
echo "series,t,x,y"
i=0
for y0 in "-0.0655 1.1039" "0.4630 -0.8559" "-2.4489 0.0445" \
          "2.4797 -1.4042" "0.5078 -1.3340" "0.1339 -1.2319" \
          "1.3222 0.9465" "1.9449 -1.0083" "-1.4225 0.8630" \
          "1.4435 -1.3001" "-0.3373 -1.3399" "-0.7953 0.0295" \
          "-2.4199 -0.7159" "-0.6815 0.7783" "-2.3204 -1.2828" \
          "-1.5922 0.0685"; do
    set -- $y0
    "$nde" solve "$dir/truth.ini" -s problem.y0="$1, $2" \
        -s field.params="mu=$mu" -s problem.t1="$t1" -o "$tmp" 2>/dev/null
    awk -F, -v id=$i -v sd=0.05 'BEGIN { srand(100 + id) }
        NR > 1 {
            n1 = 0; n2 = 0
            if (NR > 2) {
                u1 = rand(); u2 = rand()
                n1 = sd * sqrt(-2 * log(u1)) * cos(6.2831853 * u2)
                u1 = rand(); u2 = rand()
                n2 = sd * sqrt(-2 * log(u1)) * cos(6.2831853 * u2)
            }
            printf "s%d,%s,%.6f,%.6f\n", id, $1, $2 + n1, $3 + n2
        }' "$tmp"
    i=$((i + 1))
done
