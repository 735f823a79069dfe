#!/bin/bash
# Runs `systemd-analyze verify` on every shipped unit, as CI does.
#
# The units are copied into a temporary directory with ExecStart's binary
# path replaced by an existing executable (the built gmemd if given, else
# /bin/true), since verify refuses a missing binary. Any output line naming
# one of our units is a failure, warnings included. The fd store drop-in is
# verified too when systemd is 254 or later (it needs that version).
#
# Usage: systemd/verify.sh [path/to/gmemd]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
binary=${1:-/bin/true}
[ -x "$binary" ] || { echo "verify.sh: $binary is not executable" >&2; exit 2; }
command -v systemd-analyze >/dev/null || { echo "verify.sh: systemd-analyze not found (apt-get install systemd)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -r "$work"' EXIT
for unit in gmemd.socket gmemd.service; do
    sed "s|/usr/local/bin/gmemd|$binary|g" "$here/$unit" > "$work/$unit"
done
version=$(systemctl --version 2>/dev/null | awk 'NR==1 {print $2}')
if [ "${version:-0}" -ge 254 ]; then
    mkdir "$work/gmemd.service.d"
    cp "$here/gmemd.service.d/fdstore-preserve.conf" "$work/gmemd.service.d/"
fi

status=0
for unit in gmemd.socket gmemd.service; do
    # SYSTEMD_LOG_LEVEL=notice: warnings and worse, as CI would see them.
    output=$(cd "$work" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$work/$unit" 2>&1) || {
        echo "verify.sh: systemd-analyze verify $unit failed:" >&2
        status=1
    }
    problems=$(printf '%s\n' "$output" | grep -E 'gmemd' || true)
    if [ -n "$problems" ]; then
        echo "verify.sh: $unit:" >&2
        printf '%s\n' "$problems" >&2
        status=1
    else
        echo "verify.sh: $unit OK (systemd ${version:-unknown})"
    fi
done
exit $status
