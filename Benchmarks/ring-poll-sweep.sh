#!/usr/bin/env bash
# The ring poller's polling interval against a client's think time: p50 latency of a depth-1 GPC_READ over a ring
# and the daemon's CPU time, for --ring-poll-us 0 (doorbells only), 10, 50 (the default) and 200 µs, with the
# client waiting 0, 20 and 100 µs between a completion and its next entry. It is the measurement behind the
# default of --ring-poll-us (Benchmarks/README.md).
#
#   bash Benchmarks/ring-poll-sweep.sh [seconds per run]
#
# Uses release builds: $GMEMD_BINARY (default .build/release/gmemd) and $GMEM_BENCH (default .build/release/gmem-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-2}
gmemd=${GMEMD_BINARY:-.build/release/gmemd}
bench=${GMEM_BENCH:-.build/release/gmem-bench}
[ -x "$gmemd" ] && [ -x "$bench" ] || { echo "build release binaries first: swift build -c release" >&2; exit 2; }
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT

# CPU time of every thread of a process, in nanoseconds.
cpu() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'; }

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
printf '%-14s %-10s %12s %12s %16s\n' "--ring-poll-us" "think µs" "p50 ns" "ops/s" "gmemd CPU"
for poll in 0 10 50 200; do
    "$gmemd" --socket "$dir/g.sock" --size 64M --log-level warning --ring-poll-us "$poll" &
    pid=$!
    for _ in $(seq 100); do [ -S "$dir/g.sock" ] && break; sleep 0.05; done
    for gap in 0 20 100; do
        before=$(cpu $pid)
        started=$(date +%s%N)
        line=$("$bench" ring --socket "$dir/g.sock" --op gpc-read --duration "$seconds" --warmup 0.3 --gap-us "$gap" --json)
        elapsed=$(( $(date +%s%N) - started ))
        after=$(cpu $pid)
        python3 - "$poll" "$gap" "$line" "$before" "$after" "$elapsed" <<'PY'
import json, sys
poll, gap, line, before, after, elapsed = sys.argv[1:]
r = json.loads(line)
share = (int(after) - int(before)) / int(elapsed) * 100
print("%-14s %-10s %12d %12d %14.1f %%" % (poll, gap, r["p50_ns"], r["ops_per_second"], share))
PY
    done
    kill $pid; wait $pid 2>/dev/null || true
    rm -f "$dir/g.sock"
done
