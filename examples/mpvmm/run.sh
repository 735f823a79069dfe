#!/usr/bin/env bash
# Builds mpvmm (libgmem into a private prefix, then the example with pkg-config) and runs it: gmemd, the vCPU
# process on real KVM, and the device process that reaches guest memory only through gmemd.
#
#   bash examples/mpvmm/run.sh [--vcpus N]          GMEMD_BINARY=path/to/gmemd (default: .build/debug/gmemd)
#
# Exit status: 0 when the guest passed on every vCPU and the device process saw no bad request; 77 (skip, with
# the reason printed) when /dev/kvm cannot be opened; 1 otherwise.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
gmemd=${GMEMD_BINARY:-$repo/.build/debug/gmemd}
[ -x "$gmemd" ] || { echo "mpvmm: no gmemd at $gmemd: run 'swift build' or set GMEMD_BINARY" >&2; exit 1; }
if ! { exec 3<>/dev/kvm; } 2>/dev/null; then
    echo "mpvmm: SKIP: /dev/kvm cannot be opened here ($(ls -l /dev/kvm 2>&1)); the example needs real KVM"
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
trap 'kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
# Only this user may map the region: the vCPU process stands in for KVM. The device process may not.
"$gmemd" --socket "$dir/gmemd.sock" --size 16M --log-level notice --allow-map-uid "$(id -u)" 2>"$dir/gmemd.log" &
pid=$!
for _ in $(seq 200); do [ -S "$dir/gmemd.sock" ] && break; sleep 0.05; done
echo "==> running the guest"
status=0
"$build/mpvmm/mpvmm-vcpu" --socket "$dir/gmemd.sock" "$@" || status=$?
gmemctl=${GMEMCTL_BINARY:-$(dirname "$gmemd")/gmemctl}
if [ -x "$gmemctl" ]; then
    # The invariant after the run: no page held, request pages private and inaccessible, response pages shared.
    echo "==> gmemd's page map of the vCPU windows (0x10000, 32 pages) and counters"
    pages=$("$gmemctl" --socket "$dir/gmemd.sock" pages 0x10000 32 --no-legend)
    echo "$pages" | sed 's/^/    /'
    "$gmemctl" --socket "$dir/gmemd.sock" stats | grep -E "protect_calls|restores|zaps|gpc_active" | sed 's/^/    /'
    if echo "$pages" | grep '^0x' | sed 's/^[^ ]* //' | grep -q '[^.s ]'; then
        echo "mpvmm: FAIL: a page is still held or inconsistent after the run" >&2
        status=1
    fi
fi
echo "==> gmemd's log"
sed 's/^/    /' "$dir/gmemd.log"
exit $status
