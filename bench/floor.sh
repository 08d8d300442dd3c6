#!/bin/sh
# shm-spin at 64 bytes against the floor, on two CPUs: each run of
# `examples-ipc bench --mech shm-spin --pin split` measures the floor first,
# then shm-spin, and reports round_trip_ns (the median of batches of 1024
# round trips) and x_floor. Prints every run and the medians; with several
# binaries, runs them in turn.
#
#   bench/floor.sh [RUNS] [BINARY...]      (default: target/release/examples-ipc)
#
# Run it on a quiet machine: check `uptime` first.
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-9}
[ $# -gt 0 ] && shift
BINS=${*:-target/release/examples-ipc}
N=${N:-2000000}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
field() { sed -n "/\"kind\":\"$1\"/s/.*\"$2\":\([0-9.e+-]*\).*/\1/p"; }

printf '%-32s %9s %9s %7s\n' binary "floor ns" "spin ns" "×floor"
i=0
while [ $i -lt "$RUNS" ]; do
    k=0
    for b in $BINS; do
        "$b" --json bench --mech shm-spin --pin split -c "$N" --warmup 100000 >"$TMP/out"
        f=$(field floor round_trip_ns <"$TMP/out")
        r=$(field bench round_trip_ns <"$TMP/out")
        x=$(field bench x_floor <"$TMP/out")
        printf '%-32s %9.1f %9.1f %7.2f\n' "$b" "$f" "$r" "$x"
        echo "$f" >>"$TMP/f$k"; echo "$r" >>"$TMP/r$k"; echo "$x" >>"$TMP/x$k"
        k=$((k + 1))
    done
    i=$((i + 1))
done
k=0
for b in $BINS; do
    printf '%-32s %9.1f %9.1f %7.2f  (medians of %s)\n' "$b" \
        "$(median <"$TMP/f$k")" "$(median <"$TMP/r$k")" "$(median <"$TMP/x$k")" "$RUNS"
    k=$((k + 1))
done
