#!/bin/sh
# Startup cost: `examples-ipc --version` against a Rust hello-world, ROUNDS
# rounds of N runs each (perf stat -r N when perf exists); prints the median
# µs per run of each and the ratio.
#   bench/startup.sh [ROUNDS] [N]
set -eu
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
N=${2:-500}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
echo 'fn main() { println!("hello"); }' >"$TMP/hello.rs"
rustc -O -o "$TMP/hello" "$TMP/hello.rs"
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
per_run() {
    # perf stat times exec to exit without the shell's own fork; fall back
    # to a shell loop where perf is missing.
    if command -v perf >/dev/null 2>&1; then
        perf stat -r "$N" "$@" 2>&1 >/dev/null | awk '/elapsed/ {printf "%d\n", $1 * 1e6}'
        return
    fi
    s=$(date +%s%N)
    i=0
    while [ $i -lt "$N" ]; do "$@" >/dev/null; i=$((i + 1)); done
    e=$(date +%s%N)
    echo $(((e - s) / N / 1000))
}
r=0
while [ $r -lt "$ROUNDS" ]; do
    per_run "$TMP/hello" >>"$TMP/h"
    per_run target/release/examples-ipc --version >>"$TMP/e"
    r=$((r + 1))
done
h=$(median <"$TMP/h"); e=$(median <"$TMP/e")
printf 'hello-world            %5s µs\nexamples-ipc --version %5s µs  (%.2f x)\n' "$h" "$e" "$(echo "$e $h" | awk '{print $1/$2}')"
