#!/bin/sh
# Run the minimal C ping-pong next to `examples-ipc bench` and print the
# median ns per round trip of each, and their ratio.
#
#   bench/compare.sh [RUNS] [MECH...]
#
# Blocking mechanisms run with both processes on one CPU (--pin same), the
# spin mechanism and the floor on two (--pin split), as the table in
# docs/bench.md. `floor` is the bare ping-pong of one atomic word (the tool's
# `bench --floor`, all round trips over all the time, as the C program
# counts). Needs cc, a release build (cargo build --release) and two CPUs for
# shm-spin and the floor. Run it on a quiet machine: check `uptime` first.
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-5}
[ $# -gt 0 ] && shift
MECHS=${*:-floor pipe vmsplice fifo unix unix-dgram tcp posix-msq sysv-msq shm-futex shm-sem eventfd shm-spin}
BIN=target/release/examples-ipc
CC=${CC:-cc}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
"$CC" -O2 -o "$TMP/pingpong" bench/c/pingpong.c -lrt -pthread
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# The value of a number field in a JSON line.
field() { sed "s/.*\"$1\":\([0-9.e+-]*\).*/\1/"; }

printf '%-10s %-6s %10s %10s %7s\n' mechanism pin "C ns/rt" "Rust ns/rt" ratio
for m in $MECHS; do
    case $m in
        floor|shm-spin) pin=split; p=0; c=1; n=1000000 ;;
        *) pin=same; p=0; c=0; n=20000 ;;
    esac
    : >"$TMP/c"; : >"$TMP/r"
    i=0
    while [ $i -lt "$RUNS" ]; do
        "$TMP/pingpong" "$m" $n 64 $p $c | awk '{print $2}' >>"$TMP/c"
        if [ "$m" = floor ]; then
            "$BIN" --json bench --floor --pin $pin --count $n --warmup $((n / 10 + 100)) \
                | field mean_ns >>"$TMP/r"
        else
            "$BIN" --json bench --no-floor --mech "$m" --pin $pin --count $n --warmup $((n / 10 + 100)) \
                | field per_sec | awk '{printf "%.1f\n", 1e9 / $1}' >>"$TMP/r"
        fi
        i=$((i + 1))
    done
    cm=$(median <"$TMP/c"); rm_=$(median <"$TMP/r")
    printf '%-10s %-6s %10.1f %10.1f %7.2f\n' "$m" $pin "$cm" "$rm_" "$(echo "$rm_ $cm" | awk '{print $1 / $2}')"
done
