#!/usr/bin/env bash
# The mpvmm proof, as CI runs it: the guest with 2 vCPUs over the socket transport, over a ring, and over a ring
# with the device process killed (SIGKILL) in the middle of a batch and restarted; then a hostile guest. run.sh checks each run (the
# guest's verdict, the disk file, the clock, the conversions, who maps guest memory, and every page's state
# against gmemd's /proc/PID/maps afterwards).
#
#   bash examples/mpvmm/test.sh        GMEMD_BINARY as for run.sh
#
# Exit status: 0 when every run passed, 77 when there is no usable /dev/kvm (run.sh printed the reason), 1
# otherwise.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
failed=0
run() {
    local name=$1 status=0
    shift
    echo "==> mpvmm: $name"
    bash "$here/run.sh" "$@" || status=$?
    case $status in
    0) echo "PASS  mpvmm: $name" ;;
    77) [ $failed = 0 ] && exit 77; exit 1 ;;
    *) echo "FAIL  mpvmm: $name (exit $status)"; failed=1 ;;
    esac
}
run "socket transport, 2 vCPUs" --transport socket --vcpus 2
run "ring transport, 2 vCPUs" --transport ring --vcpus 2
run "ring transport, the device killed during kick 90 and restarted" --transport ring --vcpus 2 --kill-device-after 90
run "a hostile guest: malformed chains, buffers outside guest memory, a runaway index" --transport ring --vcpus 1 --hostile
run "the same over the socket" --transport socket --vcpus 1 --hostile
exit $failed
