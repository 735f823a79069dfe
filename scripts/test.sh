#!/usr/bin/env bash
# Sets up a fresh Debian machine and runs every check gmemd has.
# This is the README's test command; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Installing what a fresh Debian machine lacks"
bash scripts/install-deps.sh

step "Building everything once (debug)"
swift build --build-tests

step "Running the test suites"
swift test --skip-build

if [ -x systemd/verify.sh ] || [ -f systemd/verify.sh ]; then
    step "Verifying the systemd units"
    bash systemd/verify.sh
fi

if [ -f proto/model/check.sh ]; then
    step "Model-checking the map/unmap protocol (spin)"
    bash proto/model/check.sh
fi

step "All checks passed"
