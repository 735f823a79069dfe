#!/usr/bin/env bash
# Builds gmemd and runs it on a small default region (64 MiB) at the default
# socket; extra arguments go to gmemd (see `gmemd --help`). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release --product gmemd
swift build -c release --product gmemctl
exec .build/release/gmemd --size 64M "$@"
