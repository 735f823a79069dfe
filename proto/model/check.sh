#!/usr/bin/env bash
# check.sh -- model-check gmemd's map/unmap protocol with spin.
#
#   bash proto/model/check.sh           # all 11 runs (~3.5 min wall, mostly gcc)
#   bash proto/model/check.sh --quick   # only the three required runs (~1 min)
#
# Exit 0 only if every run matches its expectation:
#   gmem.pml                        PASS  exhaustive, errors: 0  (the proof)
#   seed.pml                        FAIL  ACCESS assertion, trail replayed
#   gmem.pml -DMUTANT_NO_COUNT      FAIL  ACCESS assertion (the proof has teeth)
# plus, unless --quick: gmem.pml with FOLIO=2, with every operation for every
# actor (K=1), without the atomic-section reduction (K=1); the seed as posted
# (safe) and with an unlocked transient copy (broken); three more mutants.
#
# All spin/pan files live in a temporary directory (removed at exit unless
# KEEP_TMP=1), so nothing is written into the repository.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
QUICK=0
[[ "${1:-}" == "--quick" ]] && QUICK=1

for tool in spin gcc; do
    command -v "$tool" >/dev/null || { echo "check.sh: $tool not found (apt-get install -y spin gcc)" >&2; exit 2; }
done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/gmem-model.XXXXXX")"
if [[ "${KEEP_TMP:-0}" == 1 ]]; then
    echo "(keeping $TMP)"
else
    trap 'rm -rf "$TMP"' EXIT
fi

MEMLIM_MB=3500          # pan refuses to grow beyond this (and then we FAIL)
ROWS=()                 # summary lines
ALL_OK=1

# run NAME MODEL EXPECT KIND "spin -D flags" "extra gcc flags"
#   EXPECT: pass | fail
#   KIND (for fail): access = the ACCESS assertion must be the one violated
#                    any    = any assertion
run() {
    local name="$1" model="$2" expect="$3" kind="$4" dflags="$5" ccflags="$6"
    local dir="$TMP/$name"
    mkdir -p "$dir"
    cp "$HERE/$model" "$dir/"
    echo
    echo "=== $name: spin -a $dflags $model   (expect: $expect)"
    local t0=$SECONDS result="?" states="-" pantime="-" mem="-" why=""
    (
        cd "$dir"
        # shellcheck disable=SC2086
        spin -a $dflags "$model" >spin.log 2>&1 || { cat spin.log; exit 3; }
        # shellcheck disable=SC2086
        gcc -O2 -w -DSAFETY -DMEMLIM=$MEMLIM_MB $ccflags -o pan pan.c >gcc.log 2>&1 || { cat gcc.log; exit 3; }
        # pan exits 0 even when it finds errors; judge by its report
        ./pan -m100000 $( [[ "$ccflags" == *BFS* ]] || echo -w26 ) >pan.out 2>&1 || true
    ) || { result="BUILD-ERROR"; }
    local out="$dir/pan.out"
    if [[ -f "$out" ]]; then
        grep -E 'errors:|states, stored|elapsed|assertion violated|too small|Search not completed|MEMLIM|out of memory|invalid end state' "$out" | sed 's/^/  pan: /' | cut -c1-160 || true
        states="$(awk '/states, stored/ {print $1; exit}' "$out")"
        pantime="$(awk '/pan: elapsed time/ {print $4; exit}' "$out")"
        mem="$(awk '/total actual memory usage/ {printf "%d", $1; exit}' "$out")"
        local errors
        errors="$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$out" | head -1)"
        if [[ -z "$errors" ]]; then
            result="NO-REPORT"
        elif [[ "$errors" == 0 ]]; then
            if grep -q 'Full statespace search' "$out" \
                && ! grep -qE 'max search depth too small|Search not completed|MEMLIM|out of memory' "$out"; then
                result="PASS"
            else
                result="INCOMPLETE"; why="search not exhaustive"
            fi
        else
            result="FAIL"
            if [[ "$expect" == fail && "$kind" == access ]] && ! grep -q 'assertion violated accessible' "$out"; then
                why="violated something other than the ACCESS assertion"
            fi
            # replay the trail: the counterexample, filtered to the model's MSG lines
            local trail
            trail="$(cd "$dir" && ls ./*.trail 2>/dev/null | head -1 || true)"
            if [[ -z "$trail" ]]; then
                why="no trail file written"
            else
                echo "  counterexample (spin -t, $(basename "$trail")):"
                # shellcheck disable=SC2086
                (cd "$dir" && spin -t $dflags "$model" >replay.out 2>&1) || true
                grep -E 'MSG:|assertion violated|text of failed' "$dir/replay.out" \
                    | sed -e 's/^[[:space:]]*//' -e 's/^MSG: //' -e 's/^/    | /' | cut -c1-150 || true
                grep -q 'assertion violated' "$dir/replay.out" || why="trail did not replay"
            fi
        fi
    fi
    local secs=$(( SECONDS - t0 ))
    local verdict="ok"
    if [[ "$expect" == pass && "$result" != PASS ]] || [[ "$expect" == fail && "$result" != FAIL ]] || [[ -n "$why" ]]; then
        verdict="MISMATCH${why:+ ($why)}"
        ALL_OK=0
    fi
    echo "  => $result, $verdict, ${states:-?} states, pan ${pantime:-?}s / ${mem:-?} MB, ${secs}s with spin+gcc"
    ROWS+=("$(printf '%-18s %-56s %-5s %-5s %10s %7s %6s %5ss  %s' "$name" "$model $dflags" "$expect" "$result" "${states:--}" "${pantime:--}s" "${mem:--}MB" "$secs" "$verdict")")
}

# ---- 1. the proof: refcounted protocol, exhaustive --------------------------
run main            gmem.pml pass -   "-DK=2 -DFOLIO=1"  ""
# ---- 2. the seed must be broken ---------------------------------------------
run seed-two-gpcs   seed.pml fail access ""                                   "-DBFS"
# ---- 3. mutation: no refcount -> the ACCESS assertion alone catches it -------
run mutant-no-count gmem.pml fail access "-DMUTANT_NO_COUNT -DACCESS_ONLY"    "-DBFS"

if [[ $QUICK == 0 ]]; then
    run main-folio2       gmem.pml pass -   "-DK=2 -DFOLIO=2"                   ""
    run main-all-ops      gmem.pml pass -   "-DK=1 -DALL_OPS"                   ""
    run main-fine-grained gmem.pml pass -   "-DK=1 -DFINE"                      ""
    run seed-rfc-guarded  seed.pml pass -   "-DSEED_GUARD"                      ""
    run seed-unlocked-rw  seed.pml fail access "-DSEED_GUARD -DSEED_UNLOCKED_TRANSIENT" "-DBFS"
    run mutant-gpc-unlock gmem.pml fail access "-DMUTANT_UNLOCKED_GPC_READ -DACCESS_ONLY" "-DBFS"
    run mutant-leak       gmem.pml fail any    "-DMUTANT_INVAL_KEEPS_REF"       "-DBFS"
    run mutant-ignore-nr  gmem.pml fail access "-DMUTANT_IGNORE_NR -DACCESS_ONLY" "-DBFS"
fi

echo
echo "================================ summary ================================"
printf '%-18s %-56s %-5s %-5s %10s %7s %6s %6s  %s\n' run "model + spin flags" exp. got states pan mem wall verdict
for r in "${ROWS[@]}"; do echo "$r"; done
echo
if [[ $ALL_OK == 1 ]]; then
    echo "ALL RUNS MATCH EXPECTATIONS"
    exit 0
else
    echo "SOME RUNS DID NOT MATCH EXPECTATIONS"
    exit 1
fi
