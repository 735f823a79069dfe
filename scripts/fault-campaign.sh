#!/usr/bin/env bash
# gmemd's fault campaign: end-to-end faults against the real daemon (Tests/FaultCampaign/fault_campaign.py).
#
#   scripts/fault-campaign.sh [--quick] [--case NAME ...] [--seed N]
#
# Uses $GMEMD_BINARY if set, else builds gmemd (debug) and uses .build/debug/gmemd.
# Cases: killed-clients, connection-cycles, slow-clients, random-bytes, map-count-exhaustion,
# sparse-pressure, conversion-storms. Prints a table (case, iterations, failures, seconds); exit status 1
# if any case failed. Unix sockets only; every loop is bounded in count and time (about 1 to 2 minutes).
# GMEM_CAMPAIGN_SEED=N (or --seed N) replays a run's random choices.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${GMEMD_BINARY:-}" ]; then
    swift build --product gmemd >/dev/null
    GMEMD_BINARY="$(swift build --show-bin-path)/gmemd"
fi
[ -x "$GMEMD_BINARY" ] || { echo "fault-campaign: no gmemd at $GMEMD_BINARY" >&2; exit 2; }
# A sanitizer build reports through the sanitizer, not the Swift backtracer.
export SWIFT_BACKTRACE="${SWIFT_BACKTRACE:-enable=no}"
exec timeout --kill-after=30 900 python3 -u Tests/FaultCampaign/fault_campaign.py --gmemd "$GMEMD_BINARY" "$@"
