#!/bin/sh
# The everyday path: `examples-ipc posix msq` client (-c N --interval 0) into
# a server (--count N) writing to a file, next to a C sender/receiver pair,
# the same C pair with a write(2) per line (the server's guarantee: a message
# is out before the next is taken) and (when `import posix_ipc` works in
# $PYTHON) a Python posix_ipc pair. Prints the median one-way rate of each,
# timed from the first to the last message the receiver got.
#
#   bench/msq-compare.sh [RUNS] [COUNT]
#
# RECV_CPU and SEND_CPU (e.g. 0 and 0) pin the receivers and the senders
# with taskset; unset, the scheduler places them. BIN picks the binary.
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-5}
N=${2:-100000}
BIN=${BIN:-target/release/examples-ipc}
PYTHON=${PYTHON:-python3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
"${CC:-cc}" -O2 -o "$TMP/msq" bench/c/msq_oneway.c -lrt
on() { if [ -n "${1:-}" ]; then shift; taskset -c "$CPU" "$@"; else shift; "$@"; fi; }
recv() { CPU=${RECV_CPU:-} on "${RECV_CPU:-}" "$@"; }
send() { CPU=${SEND_CPU:-} on "${SEND_CPU:-}" "$@"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# Seconds since midnight of an HH:MM:SS.ffffff stamp.
rust_rate() {
    awk 'NR==2 {split($1,a,":"); t0=a[1]*3600+a[2]*60+a[3]}
         END   {split($1,a,":"); t1=a[1]*3600+a[2]*60+a[3]; printf "%.0f\n", (NR-2)/(t1-t0)}' "$1"
}
wait_file() { while ! [ -s "$1" ]; do sleep 0.01; done; }

i=0
while [ $i -lt "$RUNS" ]; do
    q=/examples-ipc-msqcmp-$$-$i
    # C
    recv "$TMP/msq" recv "$q-c" "$N" >"$TMP/c.out" 2>"$TMP/c.rate" & p=$!
    sleep 0.2
    send "$TMP/msq" send "$q-c" "$N"
    wait $p
    awk '{print $1}' "$TMP/c.rate" >>"$TMP/c"
    # C, a write per line
    recv "$TMP/msq" recv-lines "$q-l" "$N" >"$TMP/l.out" 2>"$TMP/l.rate" & p=$!
    sleep 0.2
    send "$TMP/msq" send "$q-l" "$N"
    wait $p
    awk '{print $1}' "$TMP/l.rate" >>"$TMP/l"
    # Rust
    recv "$BIN" posix msq -s -n "$q-r" --count "$N" >"$TMP/r.out" & p=$!
    wait_file "$TMP/r.out"
    send "$BIN" posix msq -n "$q-r" -c "$N" --interval 0 >/dev/null
    wait $p
    "$BIN" posix msq --clean -n "$q-r" >/dev/null
    rust_rate "$TMP/r.out" >>"$TMP/r"
    # Python
    if "$PYTHON" -c 'import posix_ipc' 2>/dev/null; then
        recv "$PYTHON" bench/py/msq_oneway.py recv "$q-p" "$N" >"$TMP/p.out" 2>"$TMP/p.rate" & p=$!
        sleep 0.5
        send "$PYTHON" bench/py/msq_oneway.py send "$q-p" "$N"
        wait $p
        awk '{print $1}' "$TMP/p.rate" >>"$TMP/p"
    fi
    i=$((i + 1))
done
c=$(median <"$TMP/c"); l=$(median <"$TMP/l"); r=$(median <"$TMP/r")
printf 'C pair          %9s msgs/s\n' "$c"
printf 'C, write/line   %9s msgs/s\n' "$l"
printf 'examples-ipc    %9s msgs/s  (%.2f x C, %.2f x C with a write per line)\n' "$r" \
    "$(echo "$r $c" | awk '{print $1/$2}')" "$(echo "$r $l" | awk '{print $1/$2}')"
if [ -s "$TMP/p" ] 2>/dev/null; then
    p=$(median <"$TMP/p")
    printf 'Python posix_ipc %8s msgs/s  (examples-ipc is %.2f x Python)\n' "$p" "$(echo "$r $p" | awk '{print $1/$2}')"
fi
