#!/usr/bin/env bash
# Builds mpvmm (libgmem into a private prefix, then the example with pkg-config) and runs it: gmemd, the vCPU
# process on real KVM, the block device and the clock, which reach guest memory only through gmemd.
#
#   bash examples/mpvmm/run.sh [--transport socket|ring|direct] [--vcpus N] [--rounds N] [--kill-device-after KICK]
#                              [--hostile]
#   bash examples/mpvmm/run.sh --bench [--bench-rounds N] [--rounds BATCHES]
#   GMEMD_BINARY=path/to/gmemd (default: .build/debug/gmemd), GMEMCTL_BINARY (default: beside gmemd),
#   GMEMD_ARGS="--ring-poll-us 500" (more options for gmemd)
#
# --bench runs the benchmark guest (one vCPU) over all three transports, interleaved, --bench-rounds times
# (default 3), and prints each row's median: 4 KiB and 64 KiB request rates and MB/s, timed by the host and by
# the guest's own clock. Use a release gmemd for it (GMEMD_BINARY=.build/release/gmemd).
#
# After every run it checks, through gmemctl and /proc/PID/maps of gmemd, that no page is held, that the
# conversions happened (gpc_invalidations), and that every page's state agrees with gmemd's own mapping: a
# private page inaccessible, a shared page accessible.
#
# Exit status: 0 when the guest passed on every vCPU and every check held; 77 (skip, with the reason printed)
# when /dev/kvm cannot be opened; 1 otherwise.
set -euo pipefail
bench=0 bench_rounds=3 args=()
while [ $# -gt 0 ]; do
    case $1 in
    --bench) bench=1 ;;
    --bench-rounds) bench_rounds=$2; shift ;;
    *) args+=("$1") ;;
    esac
    shift
done
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
gmemd=${GMEMD_BINARY:-$repo/.build/debug/gmemd}
gmemctl=${GMEMCTL_BINARY:-$(dirname "$gmemd")/gmemctl}
for tool in "$gmemd" "$gmemctl"; do
    [ -x "$tool" ] || { echo "mpvmm: no $(basename "$tool") at $tool: run 'swift build' or set GMEMD_BINARY" >&2; exit 1; }
done
if ! { exec 3<>/dev/kvm; } 2>/dev/null; then
    echo "mpvmm: skipped: no usable /dev/kvm ($(ls -l /dev/kvm 2>&1)); the example needs real KVM"
    exit 77
fi
exec 3>&-

build=$here/build
prefix=$build/prefix
mkdir -p "$build"
echo "==> libgmem into $prefix"
if [ ! -f "$build/libgmem/build.ninja" ]; then
    meson setup "$build/libgmem" "$repo/clients/c" --prefix "$prefix" --libdir lib --buildtype release >/dev/null
fi
ninja -C "$build/libgmem" >/dev/null
meson install -C "$build/libgmem" --quiet
echo "==> mpvmm (pkg-config gmem)"
if [ ! -f "$build/mpvmm/build.ninja" ]; then
    PKG_CONFIG_PATH=$prefix/lib/pkgconfig meson setup "$build/mpvmm" "$here" >/dev/null
fi
ninja -C "$build/mpvmm" >/dev/null

dir=$(mktemp -d /tmp/mpvmm.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
truncate -s 8M "$dir/disk.img"
# Only this user may map the region: the vCPU process stands in for KVM. (The device and the clock are the same
# user here and could ask too; they do not, and the vCPU process checks their /proc/PID/maps while they run.)
# shellcheck disable=SC2086 # GMEMD_ARGS: extra options for gmemd, split on spaces (e.g. "--ring-poll-us 500")
"$gmemd" --socket "$dir/gmemd.sock" --size 32M --log-level notice --allow-map-uid "$(id -u)" ${GMEMD_ARGS-} \
    2>"$dir/gmemd.log" &
pid=$!
for _ in $(seq 200); do [ -S "$dir/gmemd.sock" ] && break; sleep 0.05; done
status=0
vcpu() { "$build/mpvmm/mpvmm-vcpu" --socket "$dir/gmemd.sock" --disk "$dir/disk.img" "$@"; }
if [ $bench = 0 ]; then
    echo "==> running the guest"
    vcpu "${args[@]}" || status=$?
else
    echo "==> benchmark: $bench_rounds rounds of socket, ring, direct (gmemd: $gmemd ${GMEMD_ARGS-}; load $(cut -d' ' -f1-3 /proc/loadavg))"
    for round in $(seq "$bench_rounds"); do
        for transport in socket ring direct; do
            vcpu --bench --vcpus 1 --transport "$transport" "${args[@]}" >"$dir/out" || status=1
            grep -E '^mpvmm-(bench|dev-phase) ' "$dir/out" >>"$dir/bench" || { cat "$dir/out"; status=1; }
        done
    done
    bash "$here/bench-table.sh" "$dir/bench"
fi

# The checks after the run report every failure rather than stop at the first.
set +e
ctl() { "$gmemctl" --socket "$dir/gmemd.sock" "$@"; }
# A counter of the STATS reply in file $1.
counter() { awk -v name="$2" '$1 == name { print $2 }' "$1"; }
fail() { echo "mpvmm: FAIL: $*" >&2; status=1; }
# gmemd retires a closed connection (its GPCs, its rings) asynchronously: give it up to 5 s.
for _ in $(seq 100); do
    ctl stats >"$dir/stats" 2>/dev/null && [ "$(counter "$dir/stats" gpc_active)" = 0 ] &&
        [ "$(counter "$dir/stats" connections)" = 1 ] && break
    sleep 0.05
done
echo "==> gmemd after the run"
ctl stats >"$dir/stats" || fail "gmemctl stats failed"
grep -E "^(protect_calls|gpc_activations|gpc_active|gpc_invalidations|connections|rings_active) " "$dir/stats" |
    sed 's/^/    /'
active=$(counter "$dir/stats" gpc_active) invalidations=$(counter "$dir/stats" gpc_invalidations)
[ "${active:-x}" = 0 ] || fail "GPCs are still active (${active:-unknown}) after every client left"
hostile=0
case " ${args[*]-} " in *" --hostile "*) hostile=1 ;; esac
if [ $bench = 0 ] && [ $hostile = 0 ] && [ "${invalidations:-0}" -lt 2 ]; then
    fail "the guest's conversions invalidated no GPC (gpc_invalidations ${invalidations:-unknown})"
fi
# Every page of the region: gmemd's page map (nothing may be held now) against the protection /proc/PID/maps of
# gmemd shows for that page (accessible exactly when shared).
pages=$(ctl pages 0 $((32 * 256)) --no-legend) || fail "gmemctl pages failed"
echo "$pages" | tail -1 | sed 's/^/    /'
if ! echo "$pages" | grep '^0x' | sed 's/^[^ ]* //; s/ //g' | tr -d '\n' |
    awk -v maps=/proc/$pid/maps '
    function hex(s,    n, i) {
        for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
        return n
    }
    BEGIN {
        while ((getline line < maps) > 0) {
            if (line !~ /memfd:gmemd-guest/) continue
            split(line, f, " "); split(f[1], range, "-")
            first = hex(f[3]) / 4096
            count = (hex(range[2]) - hex(range[1])) / 4096
            for (i = 0; i < count; i++) readable[first + i] = substr(f[2], 1, 1) == "r"
        }
    }
    {
        for (i = 0; i < length($0); i++) {
            c = substr($0, i + 1, 1)
            if (c != "." && c != "s") { printf "page %d is %s after the run (held or inconsistent)\n", i, c; bad++ }
            else if ((c == "s") != readable[i]) { printf "page %d is %s but %s in /proc/PID/maps\n", i, c, readable[i] ? "accessible" : "inaccessible"; bad++ }
        }
        pages = length($0)
    }
    END {
        if (pages == 0) { print "no page map to check"; exit 1 }
        if (!bad) print pages " pages agree with gmemd'"'"'s /proc/PID/maps"
        exit (bad > 0)
    }' 2>&1 | sed 's/^/    /'; then
    fail "a page's state and gmemd's mapping disagree"
fi
if [ $status -ne 0 ]; then
    echo "==> gmemd's log"
    sed 's/^/    /' "$dir/gmemd.log"
fi
exit $status
