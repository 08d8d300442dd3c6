#!/bin/sh
# `ls` with many objects, whole process: text against `--json` (time and
# peak memory), and against util-linux `lsipc` running each of its modes.
#
#   bench/ls.sh [ROUNDS] [N] [OBJECTS] [BINARY...]
#
# Makes OBJECTS objects (default 1000) of the six kinds in turn, with
# bench/c/ipc_objects.c (POSIX names /eipc-ls-PID-..., System V objects under
# free keys), and removes them on exit. BINARY defaults to
# target/release/examples-ipc; give two (a copy of the old build and the new
# one) for a before/after from the same run. Each round runs every command
# in turn, N times each with `hyperfine -N` (the round's figure is their
# median), so a busy minute hits them all alike; lsipc's figure is the sum
# of its modes (-q, -m, -s, and the POSIX ones where this lsipc has them;
# `ls --sysv` lists what the first three do). LSIPC=PATH runs another
# lsipc than the one on PATH (2.41 added the POSIX modes -Q, -M, -S).
# Printed: the median over the rounds, its ratio to the first BINARY's text
# `ls` of the same round (median of the ratios), and the median peak RSS of
# 9 runs (`/usr/bin/time -f %M`); then each BINARY's `ls` against lsipc
# (median of the rounds' ratios, and their smallest and largest).
set -eu
ROUNDS=${1:-11}
N=${2:-9}
OBJECTS=${3:-1000}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] && shift
[ $# -gt 0 ] && shift
for b in "$@"; do
    [ -x "$b" ] || { echo "no binary $b" >&2; exit 1; }
    set -- "$@" "$(cd "$(dirname "$b")" && pwd)/$(basename "$b")"
    shift
done
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- "$PWD/target/release/examples-ipc"
[ -x "$1" ] || { echo "no binary $1: cargo build --release first" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine is needed" >&2; exit 1; }
LSIPC=${LSIPC:-lsipc}
command -v "$LSIPC" >/dev/null || { echo "no lsipc $LSIPC" >&2; exit 1; }
TMP=$(mktemp -d)
TAG=eipc-ls-$$
cc -O2 -o "$TMP/objects" bench/c/ipc_objects.c -pthread
trap '"$TMP/objects" remove $TAG $OBJECTS <"$TMP/ids"; rm -rf "$TMP"' EXIT
trap 'exit 1' INT TERM
"$TMP/objects" create $TAG "$OBJECTS" >"$TMP/ids"

# The commands, one per line: a label, then what runs (lsipc's modes
# separated by ';').
{
    i=0
    for b in "$@"; do
        i=$((i + 1))
        echo "ls#$i $b ls"
        echo "json#$i $b --json ls"
        # What lsipc without POSIX modes (before util-linux 2.41) lists.
        echo "sysv#$i $b ls --sysv"
    done
    modes="$LSIPC -q;$LSIPC -m;$LSIPC -s"
    for m in --posix-mqueues --posix-shmems --posix-semaphores; do
        "$LSIPC" --help 2>/dev/null | grep -q -- "$m" && modes="$modes;$LSIPC $m"
    done
    echo "lsipc $modes"
} >"$TMP/commands"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# ms per run of one command line (no shell in between), median of N runs.
ms() {
    hyperfine -N --style none --warmup 2 --runs "$N" --export-csv "$TMP/csv" "$1" \
        >/dev/null 2>"$TMP/err" || { cat "$TMP/err" >&2; exit 1; }
    awk -F, 'NR == 2 {printf "%.3f\n", $4 * 1e3}' "$TMP/csv"
}

r=0
while [ $r -lt "$ROUNDS" ]; do
    r=$((r + 1))
    while read -r label cmds; do
        total=0
        old_ifs=$IFS
        IFS=';'
        for c in $cmds; do
            IFS=$old_ifs
            total=$(echo "$total $(ms "$c" </dev/null)" | awk '{print $1 + $2}')
        done
        IFS=$old_ifs
        echo "$total" >>"$TMP/t.$label"
        [ "$label" = "ls#1" ] && base=$total
        echo "$total $base" | awk '{print $1 / $2}' >>"$TMP/r.$label"
    done <"$TMP/commands"
done

while read -r label cmds; do
    rss=-
    if [ -x /usr/bin/time ]; then
        j=0
        while [ $j -lt 9 ]; do
            j=$((j + 1))
            peak=0
            old_ifs=$IFS
            IFS=';'
            for c in $cmds; do
                IFS=$old_ifs
                # shellcheck disable=SC2086
                kb=$(/usr/bin/time -f %M $c 2>&1 >/dev/null </dev/null | tail -1)
                [ "$kb" -gt "$peak" ] && peak=$kb
            done
            IFS=$old_ifs
            echo "$peak"
        done | median >"$TMP/rss"
        rss="$(awk '{printf "%.1f MB", $1 / 1024}' "$TMP/rss")"
    fi
    printf '%-8s %8.2f ms  x%.3f  peak %s  (%s)\n' "$label" \
        "$(median <"$TMP/t.$label")" "$(median <"$TMP/r.$label")" "$rss" "$cmds"
done <"$TMP/commands"

# Each binary's text `ls` against lsipc, round by round.
i=0
for b in "$@"; do
    i=$((i + 1))
    paste -d' ' "$TMP/t.ls#$i" "$TMP/t.lsipc" | awk '{print $1 / $2}' >"$TMP/q"
    printf 'ls#%s / lsipc: x%.3f (rounds: %s to %s)\n' "$i" "$(median <"$TMP/q")" \
        "$(sort -n "$TMP/q" | head -1)" "$(sort -n "$TMP/q" | tail -1)"
done
