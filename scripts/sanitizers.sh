#!/usr/bin/env bash
# Runs gmemd's tests under the sanitizers.
#
#   scripts/sanitizers.sh [thread|address|all]      default: all
#
# thread   the concurrency stress tests (GmemCoreTests, suite "Concurrency
#          stress", ConcurrencyStressTests) under ThreadSanitizer, then the
#          rest of GmemCoreTests (two written exceptions below), then the
#          server's cross-thread paths: the end-to-end and client suites that
#          drive them, against a TSan-built gmemd
#          (GMEMD_BINARY=.build-tsan/debug/gmemd); scratch path .build-tsan.
# address  the end-to-end suite (GmemdEndToEndTests) under AddressSanitizer,
#          scratch path .build-asan. The gmemd those tests spawn is the ASan
#          build (GMEMD_BINARY=.build-asan/debug/gmemd), so a memory error or
#          leak in the daemon is reported too. Then the fault campaign
#          (scripts/fault-campaign.sh --quick) against the same ASan gmemd,
#          unless GMEM_SANITIZE_CAMPAIGN=0.
#
# Every sanitizer report, from the test runner or from any gmemd it spawned,
# is written under .build-sanitizers/<kind>/ (log_path) and fails the run: a
# daemon's report would otherwise vanish with its stderr. Nothing is
# suppressed without a written reason (scripts/tsan-suppressions.txt). The
# XCTest runner is skipped (--disable-xctest): every suite is Swift Testing, and an
# empty XCTest run only adds LeakSanitizer reports about XCTest's own objects.
# gmemd's own locks are pthread mutexes (GmemCore's Locked), which TSan
# intercepts; Synchronization.Mutex is not used in what TSan runs, because its
# Linux implementation is invisible to TSan (see Locked.swift).
# Prints each step's wall time. Exit status 1 if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
case "$what" in thread | address | all) ;; *) echo "usage: $0 [thread|address|all]" >&2; exit 2 ;; esac

# The Swift runtime's crash backtracer reads memory the sanitizers call wild;
# let the sanitizer report the crash instead.
export SWIFT_BACKTRACE=enable=no

logs="$PWD/.build-sanitizers"
failures=()
timings=()

now() { date +%s; }
step() { printf '\n==> %s\n' "$*"; }
# record LABEL STARTED STATUS: one line of the summary.
record() { timings+=("$(printf '%-44s %5d s  %s' "$1" $(($(now) - $2)) "$([ "$3" -eq 0 ] && echo ok || echo FAILED)")"); }

# run_tests SANITIZER SCRATCH LOG LINES ARGS...: `swift test` of the sanitized
# build, logged to $logs/LOG.log (its last LINES lines shown); sets `status`
# and `ran` (the number of tests that ran).
run_tests() {
    local sanitizer=$1 scratch=$2 log="$logs/$3.log" lines=$4
    shift 4
    swift test --skip-build --disable-xctest --sanitize="$sanitizer" --scratch-path "$scratch" "$@" 2>&1 \
        | tee "$log" | tail -"$lines"
    status=${PIPESTATUS[0]}
    ran=$(grep -cE '^(✔|✘) Test "|Test Case .* (passed|failed)' "$log" || true)
}

# sanitized_gmemd SCRATCH SYMBOL KIND: sets `gmemd` to SCRATCH's debug gmemd;
# returns 1, recording a failure, unless it carries SYMBOL (__tsan_init,
# __asan_init). grep without -q reads all of nm's output: no SIGPIPE failing
# the pipeline.
sanitized_gmemd() {
    gmemd="$PWD/$1/debug/gmemd"
    { nm "$gmemd" 2>/dev/null; nm -D "$gmemd" 2>/dev/null; } | grep "$2" >/dev/null && return 0
    failures+=("$3: $gmemd is not a sanitizer build ($2 missing)")
    return 1
}

# Prints the reports under $1 and returns 1 if there are any.
check_reports() {
    local directory=$1 found=0
    for report in "$directory"/*; do
        [ -s "$report" ] || continue
        found=1
        echo "---- $report"
        head -60 "$report"
    done
    return $found
}

run_thread() {
    local reports="$logs/tsan" started status ran
    rm -rf "$reports" && mkdir -p "$reports"
    # Suppressions, each with its reason: scripts/tsan-suppressions.txt.
    export TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:history_size=4:log_path=$reports/tsan:suppressions=$PWD/scripts/tsan-suppressions.txt"

    step "ThreadSanitizer: building (.build-tsan), gmemd included"
    started=$(now)
    swift build --build-tests --sanitize=thread --scratch-path .build-tsan >"$logs/tsan-build.log" 2>&1 \
        && swift build --sanitize=thread --scratch-path .build-tsan --product gmemd >>"$logs/tsan-build.log" 2>&1
    status=$?
    record "tsan: build (all test targets and gmemd)" "$started" $status
    if [ $status -ne 0 ]; then
        tail -30 "$logs/tsan-build.log"
        failures+=("tsan build (log: $logs/tsan-build.log)")
        return
    fi

    step "ThreadSanitizer: the concurrency stress tests"
    started=$(now)
    run_tests thread .build-tsan tsan-test 15 --filter 'GmemCoreTests\.ConcurrencyStressTests'
    record "tsan: ConcurrencyStressTests ($ran tests)" "$started" $status
    [ $status -eq 0 ] || failures+=("tsan: the stress tests failed (log: $logs/tsan-test.log)")
    [ "$ran" -gt 0 ] || failures+=("tsan: the filter matched no stress test")

    # The rest of the core's tests, with two written exceptions:
    # - detect_deadlocks=0: a conversion or a long access holds the folio
    #   mutexes of a whole range at once (up to 512 for a 2 MiB chunk), and
    #   TSan's lock-order detector tracks at most 128 held locks per thread; past
    #   that it aborts the process ("CHECK failed: sanitizer_deadlock_detector.h:67").
    #   Data-race detection stays on; the stress suite above runs with the
    #   deadlock detector on.
    # - LargeRegionTests is skipped: it asserts RSS budgets for 1 TiB regions,
    #   and TSan's shadow memory for those mappings exceeds them by design.
    step "ThreadSanitizer: the other GmemCoreTests (deadlock detector off, see the comment)"
    started=$(now)
    TSAN_OPTIONS="$TSAN_OPTIONS:detect_deadlocks=0" run_tests thread .build-tsan tsan-core 5 \
        --filter 'GmemCoreTests' --skip 'ConcurrencyStressTests|LargeRegionTests'
    record "tsan: other GmemCoreTests ($ran tests)" "$started" $status
    [ $status -eq 0 ] || failures+=("tsan: GmemCoreTests failed (log: $logs/tsan-core.log)")

    # The server's threads, in a TSan-built gmemd (its reports land in the same
    # log_path, through the inherited TSAN_OPTIONS). The suites are chosen for
    # the paths that cross threads, not for coverage:
    # - InvalidationEventTests: a conversion on one connection's event loop
    #   invalidates GPCs of connections on other loops (the hop in
    #   ConnectionHandler+Dispatch.swift makeInvalidationHandler);
    # - PipeliningTests, ClientPipeliningTests: many requests in flight,
    #   large SET_ATTRIBUTES/DISCARD on the offload thread pool while the
    #   loop keeps serving, backpressure;
    # - ShutdownTests: SIGTERM drains connections of every loop from the
    #   signal thread;
    # - ModelBasedTests: random operation sequences over several connections;
    # - ClientGuestPageCacheTests: GPCs invalidated under the Swift client;
    # - RingTests: ring pollers serving entries (GPCs looked up from another
    #   thread than the connection's loop, released across threads);
    # - DeviceOpsTests: atomic operations from several clients at once.
    # Deadlock detector off in the daemon for the reason given above (a range
    # conversion holds hundreds of folio locks).
    # Two runs, not one: the end-to-end suites block test threads on
    # synchronous connections, and on a 2-core host under TSan that starved
    # the async Swift client of the other suites for over gmemd's 30 s frame
    # timeout (gmemd then rightly closed connections whose replies went unread).
    local gmemd
    if sanitized_gmemd .build-tsan __tsan_init tsan; then
        local label filter
        for label in end-to-end client; do
            case $label in
            end-to-end) filter='GmemdEndToEndTests\.(InvalidationEventTests|PipeliningTests|ShutdownTests|ModelBasedTests|RingTests|DeviceOpsTests)' ;;
            client) filter='GmemClientTests\.(ClientGuestPageCacheTests|ClientPipeliningTests)' ;;
            esac
            step "ThreadSanitizer: the server's cross-thread paths ($label suites) against the TSan gmemd"
            started=$(now)
            TSAN_OPTIONS="$TSAN_OPTIONS:detect_deadlocks=0" GMEMD_BINARY="$gmemd" GMEMD_BIN_DIR="$PWD/.build-tsan/debug" \
                run_tests thread .build-tsan "tsan-server-$label" 15 --filter "$filter"
            record "tsan: $label server suites ($ran tests)" "$started" $status
            [ $status -eq 0 ] || failures+=("tsan: the $label server suites failed (log: $logs/tsan-server-$label.log)")
            [ "$ran" -gt 0 ] || failures+=("tsan: the filter matched no $label server suite")
        done
    fi
    check_reports "$reports" || failures+=("tsan: ThreadSanitizer reports in $reports")
    unset TSAN_OPTIONS
}

run_address() {
    local reports="$logs/asan" started status ran
    rm -rf "$reports" && mkdir -p "$reports"
    export ASAN_OPTIONS="detect_leaks=1:log_path=$reports/asan:abort_on_error=0"

    step "AddressSanitizer: building (.build-asan), gmemd included"
    started=$(now)
    swift build --build-tests --sanitize=address --scratch-path .build-asan >"$logs/asan-build.log" 2>&1 \
        && swift build --sanitize=address --scratch-path .build-asan --product gmemd >>"$logs/asan-build.log" 2>&1
    status=$?
    record "asan: build (all test targets and gmemd)" "$started" $status
    if [ $status -ne 0 ]; then
        tail -30 "$logs/asan-build.log"
        failures+=("asan build (log: $logs/asan-build.log)")
        return
    fi
    local gmemd
    sanitized_gmemd .build-asan __asan_init asan || return

    step "AddressSanitizer: the end-to-end suite against the ASan gmemd"
    started=$(now)
    GMEMD_BINARY="$gmemd" run_tests address .build-asan asan-test 15 --filter 'GmemdEndToEndTests'
    record "asan: GmemdEndToEndTests ($ran tests)" "$started" $status
    [ $status -eq 0 ] || failures+=("asan: the end-to-end tests failed (log: $logs/asan-test.log)")
    [ "$ran" -gt 0 ] || failures+=("asan: the filter matched no end-to-end test")

    if [ "${GMEM_SANITIZE_CAMPAIGN:-1}" != 0 ]; then
        step "AddressSanitizer: the fault campaign against the ASan gmemd"
        started=$(now)
        GMEMD_BINARY="$gmemd" GMEM_CAMPAIGN_SANITIZER=address bash scripts/fault-campaign.sh --quick 2>&1 | tee "$logs/asan-campaign.log" | tail -25
        status=${PIPESTATUS[0]}
        record "asan: fault campaign (--quick)" "$started" $status
        [ $status -eq 0 ] || failures+=("asan: the fault campaign failed (log: $logs/asan-campaign.log)")
    fi
    check_reports "$reports" || failures+=("asan: AddressSanitizer reports in $reports")
    unset ASAN_OPTIONS
}

mkdir -p "$logs"
total_started=$(now)
case "$what" in
    thread) run_thread ;;
    address) run_address ;;
    all) run_thread; run_address ;;
esac

printf '\nsanitizer summary (%s cores)\n' "$(nproc)"
for line in "${timings[@]}"; do echo "  $line"; done
echo "  total: $(($(now) - total_started)) s"
if [ ${#failures[@]} -gt 0 ]; then
    printf '  FAILED: %s\n' "${failures[@]}"
    exit 1
fi
echo "  all sanitizer runs clean"
