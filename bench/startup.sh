#!/bin/sh
# Startup cost, whole process: `BINARY --version` against a Rust hello-world
# built with the same [profile.release] as the tool (copied from Cargo.toml
# into a throwaway cargo project, built offline: it has no dependency).
#
#   bench/startup.sh [ROUNDS] [N] [BINARY...]
#
# BINARY defaults to target/release/examples-ipc; give two (say a copy of
# the old build and the new one) for a before/after from the same run. Each
# round runs the hello-world and every BINARY N times in turn, so a busy
# minute hits them all alike. A round's figure per program is the median
# wall time of its N runs, `hyperfine -N` (no shell in between); without
# hyperfine, the mean of `perf stat -r N`; without either, a shell loop's
# mean (which includes the shell's fork). Printed: the median over the
# rounds of each program, and of each BINARY's ratio to the hello-world of
# the same round.
set -eu
ROUNDS=${1:-25}
N=${2:-300}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] && shift
# Absolute paths, as the script works from the repository's top.
for b in "$@"; do
    [ -x "$b" ] || { echo "no binary $b" >&2; exit 1; }
    set -- "$@" "$(cd "$(dirname "$b")" && pwd)/$(basename "$b")"
    shift
done
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- target/release/examples-ipc
[ -x "$1" ] || { echo "no binary $1: cargo build --release first" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM

mkdir -p "$TMP/hello/src"
{
    printf '[package]\nname = "hello"\nversion = "0.1.0"\nedition = "2024"\n\n'
    awk '/^\[/ {p = ($0 == "[profile.release]")} p' Cargo.toml
} >"$TMP/hello/Cargo.toml"
echo 'fn main() { println!("hello"); }' >"$TMP/hello/src/main.rs"
cargo build --quiet --offline --release --manifest-path "$TMP/hello/Cargo.toml" \
    --target-dir "$TMP/target"
cp "$TMP/target/release/hello" "$TMP/hello-world"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# µs per run of "$@" (the program and its arguments), by the best tool found.
per_run() {
    if command -v hyperfine >/dev/null 2>&1; then
        # Its warnings about outliers would bury the result: kept for errors.
        hyperfine -N --style none --warmup 20 --runs "$N" --export-csv "$TMP/csv" "$*" \
            >/dev/null 2>"$TMP/err" || { cat "$TMP/err" >&2; exit 1; }
        awk -F, 'NR == 2 {printf "%.1f\n", $4 * 1e6}' "$TMP/csv"
    elif command -v perf >/dev/null 2>&1; then
        perf stat -r "$N" "$@" 2>&1 >/dev/null | awk '/elapsed/ {printf "%.1f\n", $1 * 1e6}'
    else
        s=$(date +%s%N)
        i=0
        while [ $i -lt "$N" ]; do "$@" >/dev/null; i=$((i + 1)); done
        e=$(date +%s%N)
        echo $(((e - s) / N / 1000))
    fi
}
r=0
while [ $r -lt "$ROUNDS" ]; do
    h=$(per_run "$TMP/hello-world")
    echo "$h" >>"$TMP/h"
    i=0
    for b in "$@"; do
        t=$(per_run "$b" --version)
        echo "$t" >>"$TMP/t$i"
        echo "$t $h" | awk '{print $1 / $2}' >>"$TMP/r$i"
        i=$((i + 1))
    done
    r=$((r + 1))
done
printf '%-40s %8s µs\n' "hello-world (same profile)" "$(median <"$TMP/h")"
i=0
for b in "$@"; do
    printf '%-40s %8s µs  %.2f x\n' "$b --version" "$(median <"$TMP/t$i")" "$(median <"$TMP/r$i")"
    i=$((i + 1))
done
