#!/usr/bin/env bash
# The Rust client's checks, the one command CI calls: bash clients/rust/test.sh
#
# fmt check, clippy (warnings are errors), build, tests (unit, golden frames, integration and conformance against
# a real gmemd), docs (missing docs and broken links are errors). Offline: the crate has no dependencies.
#
# The integration tests start the gmemd named by $GMEMD_BINARY. When it is unset, the Swift build's gmemd
# (.build/release, then .build/debug) is used if one exists; otherwise the tests fail and say so.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"
export CARGO_TARGET_DIR="$here/target"

# rustup installs into ~/.cargo/bin, which a non-login shell may not have on its PATH.
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
# The crate is edition 2024: Rust 1.85 or newer. Debian 12's own rustc (1.63) is too old; say so instead of
# failing on it, as an explicit skip.
if ! command -v cargo >/dev/null 2>&1; then
    echo "rust client: skipped: no cargo on this machine (install a Rust toolchain, 1.85 or newer, with rustup)"
    exit 0
fi
rust_minor=$(rustc --version | sed -n 's/^rustc 1\.\([0-9]*\).*/\1/p')
if [ "${rust_minor:-0}" -lt 85 ]; then
    echo "rust client: skipped: $(rustc --version) is older than 1.85, which edition 2024 needs (use rustup)"
    exit 0
fi
export CARGO_TERM_COLOR=never

if [ -z "${GMEMD_BINARY:-}" ]; then
    for candidate in "$repo/.build/release/gmemd" "$repo/.build/debug/gmemd"; do
        if [ -x "$candidate" ]; then
            export GMEMD_BINARY="$candidate"
            break
        fi
    done
fi
echo "rust client: GMEMD_BINARY=${GMEMD_BINARY:-<unset: the integration tests will fail>}"

failed=()
step() {
    local name="$1"
    shift
    printf '\n==> rust client: %s\n' "$name"
    if "$@"; then
        echo "--- $name: PASS"
    else
        echo "--- $name: FAIL"
        failed+=("$name")
    fi
}

start=$SECONDS
step "fmt" cargo fmt --check
step "clippy" cargo clippy --offline --all-targets -- -D warnings
step "build" cargo build --offline --all-targets
step "test" cargo test --offline
step "doc" env RUSTDOCFLAGS="-D warnings" cargo doc --offline --no-deps

echo
if [ ${#failed[@]} -eq 0 ]; then
    echo "rust client: PASS ($((SECONDS - start)) s)"
else
    echo "rust client: FAIL: ${failed[*]} ($((SECONDS - start)) s)"
    exit 1
fi
