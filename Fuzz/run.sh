#!/usr/bin/env bash
# Fuzzes gmemd's frame decoder and request handler with libFuzzer for a bounded time.
#
#   Fuzz/run.sh [seconds]        default 60
#
# Builds Fuzz/Sources/gmem-fuzz with -sanitize=fuzzer,address (scratch path
# .build-fuzz, or $GMEM_FUZZ_SCRATCH), replays Fuzz/regressions and
# Fuzz/corpus, then fuzzes from the seed corpus. Exit status 1 on any crash,
# failed check, leak, hang (-timeout=5) or memory blow-up (-rss_limit_mb=2048);
# the input that caused it is copied to Fuzz/regressions/ (commit it: the
# Swift test GmemFuzzRegressionTests and this script replay it every run).
# Fuzz/README.md explains the input format and how to reproduce a finding.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
scratch=${GMEM_FUZZ_SCRATCH:-.build-fuzz}
work="$scratch/fuzz-work"
started=$(date +%s)

fail() { echo "fuzz: FAIL: $*"; exit 1; }

python3 Fuzz/make-corpus.py --check || fail "the seed corpus is stale"

echo "==> building gmem-fuzz with libFuzzer and AddressSanitizer ($scratch)"
# One joined -sanitize=fuzzer,address: SwiftPM's --sanitize=fuzzer --sanitize=address
# passes two -sanitize flags in no fixed order, and swiftc keeps only the last,
# silently losing either the coverage or ASan.
swift build -c debug --product gmem-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address \
    -Xswiftc -DGMEM_LIBFUZZER -Xswiftc -parse-as-library \
    --scratch-path "$scratch" >"$scratch.build.log" 2>&1 \
    || { tail -40 "$scratch.build.log"; fail "the fuzz target does not build (log: $scratch.build.log)"; }
binary="$scratch/debug/gmem-fuzz"
built=$(date +%s)
# gmemd's own code must carry ASan checks (coverage is checked from libFuzzer's
# counter count below). grep without -q: no SIGPIPE under pipefail.
nm "$scratch/debug/GmemCore.build/PageTable.swift.o" 2>/dev/null | grep __asan_ >/dev/null \
    || fail "GmemCore was built without AddressSanitizer"

# The Swift runtime's own crash backtracer reads memory ASan calls wild and may
# wait for a debugger on a terminal: libFuzzer and ASan report crashes instead.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:allocator_may_return_null=1}"

rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"

save_artifacts() {
    local saved=0
    for artifact in "$work"/artifacts/*; do
        [ -e "$artifact" ] || continue
        cp "$artifact" "Fuzz/regressions/$(basename "$artifact")"
        echo "fuzz: saved Fuzz/regressions/$(basename "$artifact") (replay: $binary Fuzz/regressions/$(basename "$artifact"))"
        saved=$((saved + 1))
    done
    return $saved
}

echo "==> replaying Fuzz/regressions and Fuzz/corpus"
replay_inputs=(Fuzz/corpus/*)
for input in Fuzz/regressions/*; do
    case "$input" in *.md) ;; *) [ -f "$input" ] && replay_inputs+=("$input") ;; esac
done
"$binary" -timeout=5 -rss_limit_mb=2048 "${replay_inputs[@]}" >"$work/replay.log" 2>&1
replay_status=$?
grep -E "VIOLATION|ERROR|SUMMARY|Running:" "$work/replay.log" | grep -B1 -E "VIOLATION|ERROR|SUMMARY" | head -40
replayed=$(grep -c '^Running:' "$work/replay.log" || true)
[ $replay_status -eq 0 ] || fail "a saved input fails again (log: $work/replay.log)"
echo "fuzz: replayed $replayed inputs"

echo "==> fuzzing for ${seconds}s"
# An outer bound in case the fuzzer itself wedges.
timeout --kill-after=30 $((seconds + 240)) "$binary" "$work/corpus" Fuzz/corpus \
    -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -max_len=4096 \
    -dict=Fuzz/gmem.dict -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
    >"$work/fuzz.log" 2>&1
fuzz_status=$?
finished=$(date +%s)
counters=$(sed -n 's/^INFO: Loaded 1 modules *(\([0-9]*\) inline 8-bit counters.*/\1/p' "$work/fuzz.log" | head -1)
[ "${counters:-0}" -gt 10000 ] || fail "only ${counters:-0} coverage counters: the Swift modules lack -sanitize=fuzzer"

runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -1)
speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/fuzz.log" | tail -1)
peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$work/fuzz.log" | tail -1)
coverage=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$work/fuzz.log" | tail -1)
echo
echo "fuzz summary"
printf '  %-22s %s\n' "build" "$((built - started)) s" \
    "fuzzing" "$((finished - built)) s" \
    "inputs replayed" "${replayed:-0}" \
    "executions" "${runs:-?}" \
    "executions per second" "${speed:-?}" \
    "peak RSS" "${peak:-?} MB" \
    "coverage" "${coverage:-?} (of ${counters} counters)" \
    "new corpus inputs" "$(ls "$work/corpus" | wc -l) (in $work/corpus, not committed)"

save_artifacts
saved=$?
if [ $fuzz_status -ne 0 ] || [ $saved -ne 0 ]; then
    grep -E "VIOLATION|ERROR: |SUMMARY|ALARM|out-of-memory|leak" "$work/fuzz.log" | head -40
    fail "libFuzzer exited with status $fuzz_status and $saved finding(s) (log: $work/fuzz.log)"
fi
echo "fuzz: PASS (no crash, failed check, leak or hang in ${seconds}s)"

# The ring target: shared memory the client writes at any instant cannot go
# through the in-process harness above, so gmem-ring-fuzz drives the real gmemd
# (random entries and scribbles on live rings; Fuzz/README.md). A third of the
# libFuzzer budget, a fresh seed each run, printed for replay.
ring_seconds=$(( seconds / 3 > 5 ? seconds / 3 : 5 ))
echo "==> the ring target: gmem-ring-fuzz for ${ring_seconds}s against the real gmemd"
swift build --product gmem-ring-fuzz >"$scratch.ring-build.log" 2>&1 \
    && swift build --product gmemd >>"$scratch.ring-build.log" 2>&1 \
    || { tail -20 "$scratch.ring-build.log"; fail "gmem-ring-fuzz does not build"; }
bin=$(swift build --show-bin-path)
GMEMD_BINARY="$bin/gmemd" timeout --kill-after=10 $((ring_seconds + 120)) "$bin/gmem-ring-fuzz" "$ring_seconds" \
    || fail "gmem-ring-fuzz found a problem (replay with the seed printed above)"
echo "fuzz: ring target PASS"
