#!/usr/bin/env bash
# libgmem's CI entry point: bash clients/c/test.sh
#
# Builds the library, runs `meson test` normally and again under AddressSanitizer + UndefinedBehaviorSanitizer
# (a second build dir), installs into a temporary prefix and builds and runs a tiny program with
# `pkg-config --cflags --libs gmem`. The tests spawn gmemd from $GMEMD_BINARY (default: the Swift build's
# .build/debug/gmemd, then .build/release/gmemd).
# Build dirs: clients/c/build, build-asan, build-install (ignored by git). Prints PASS or FAIL per step and at
# the end; the exit status is 0 only if everything passed.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"
repo=$(cd "$here/../.." && pwd)
if [ -z "${GMEMD_BINARY:-}" ]; then
    for candidate in "$repo/.build/debug/gmemd" "$repo/.build/release/gmemd"; do
        if [ -x "$candidate" ]; then GMEMD_BINARY=$candidate && break; fi
    done
fi
export GMEMD_BINARY=${GMEMD_BINARY:-}
failed=0
tmp=$(mktemp -d /tmp/libgmem-ci.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

step() { # name command...
    local name=$1
    shift
    local start=$SECONDS
    if "$@" >"$tmp/log" 2>&1; then
        echo "PASS  $name ($((SECONDS - start)) s)"
    else
        echo "FAIL  $name ($((SECONDS - start)) s)"
        sed 's/^/      /' "$tmp/log" | tail -60
        failed=1
    fi
}

# Functions below chain with && : errexit does not apply inside `if "$@"`.
setup() { # dir meson-options...
    local dir=$1
    shift
    if [ -f "$dir/build.ninja" ]; then meson setup --reconfigure "$dir" "$@"; else meson setup "$dir" "$@"; fi
}

# -j 2: CI machines here have two cores.
build() { setup build && ninja -C build -j 2; }
build_asan() { setup build-asan -Db_sanitize=address,undefined -Db_lundef=false && ninja -C build-asan -j 2; }

if [ ! -x "$GMEMD_BINARY" ]; then
    echo "FAIL  gmemd not found at GMEMD_BINARY=$GMEMD_BINARY"
    exit 1
fi

step "build" build
step "meson test" meson test -C build --print-errorlogs --num-processes 2
step "build (ASan+UBSan)" build_asan
step "meson test (ASan+UBSan)" meson test -C build-asan --print-errorlogs --num-processes 2

# Install into a temporary prefix and use it the way a user would: pkg-config only.
prefix="$tmp/prefix"
pkgcheck() {
    setup build-install --prefix "$prefix" --buildtype release &&
        ninja -C build-install -j 2 &&
        meson install -C build-install --quiet || return 1
    local pc
    pc=$(find "$prefix" -name gmem.pc)
    [ -n "$pc" ] || return 1
    export PKG_CONFIG_PATH
    PKG_CONFIG_PATH=$(dirname "$pc")
    local libdir
    libdir=$(pkg-config --variable=libdir gmem) &&
        [ -f "$prefix/include/gmem.h" ] &&
        [ -L "$libdir/libgmem.so" ] && [ -e "$libdir/libgmem.so.0" ] && [ -f "$libdir/libgmem.a" ] || return 1
    cat >"$tmp/hello.c" <<'C'
#include <gmem.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
int main(int argc, char **argv)
{
    struct gmem *g = gmem_connect(argc > 1 ? argv[1] : NULL);
    if (!g) { fprintf(stderr, "connect: %s\n", strerror(errno)); return 1; }
    struct gmem_info i;
    gmem_info(g, &i);
    int rc = gmem_ping(g);
    printf("region %llu bytes, ping %d\n", (unsigned long long)i.region_size, rc);
    gmem_close(g);
    return rc != 0;
}
C
    # The two commands a user types: shared through pkg-config, and the static archive.
    cc -std=c11 -Wall -Werror $(pkg-config --cflags gmem) "$tmp/hello.c" -o "$tmp/hello" $(pkg-config --libs gmem) &&
        cc -std=c11 -Wall -Werror $(pkg-config --cflags gmem) "$tmp/hello.c" -o "$tmp/hello-static" \
            "$libdir/libgmem.a" || return 1
    mkdir -p "$tmp/d"
    "$GMEMD_BINARY" --socket "$tmp/d/gmemd.sock" --size 16M --log-level warning &
    local pid=$! rc=0
    for _ in $(seq 200); do [ -S "$tmp/d/gmemd.sock" ] && break; sleep 0.05; done
    LD_LIBRARY_PATH="$libdir" "$tmp/hello" "$tmp/d/gmemd.sock" || rc=1
    GMEMD_SOCKET="$tmp/d/gmemd.sock" "$tmp/hello-static" || rc=1 # gmem_connect(NULL): $GMEMD_SOCKET
    kill "$pid"
    wait "$pid"
    return $rc
}
step "install + pkg-config" pkgcheck

if [ $failed = 0 ]; then echo "PASS  libgmem (clients/c)"; else echo "FAIL  libgmem (clients/c)"; fi
exit $failed
