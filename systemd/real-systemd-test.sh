#!/bin/bash
# Runs the shipped units under a real systemd: systemd (the host's, 252 on
# Debian 12) as PID 1 of private PID, mount, cgroup, IPC, UTS and network
# namespaces, with gmemd installed as README.md's "Install as a service"
# says. Prints PASS/FAIL per check and "N passed, N failed"; exits 1 on any
# failure. Prints "skipped: REASON" and exits 0 where systemd cannot be
# booted this way (not root, no unshare, no cgroup2).
#
# Isolation (see real-systemd/namespace-setup.sh): the namespace sees the
# host read-only, with private /tmp, /run, /var/log, /dev, an overlay /etc
# and unit directories holding only the test's units. This script checks
# afterwards that a canary in the host's /tmp and the host's passwd, group
# and shadow files are unchanged and that no process of the namespace is left.
#
# Usage: systemd/real-systemd-test.sh [BIN_DIR]   (default: swift build --show-bin-path)
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

# A hard limit on the whole run; the trap below still cleans up on its TERM.
if [ -z "${GMEMD_REAL_SYSTEMD_TIMED:-}" ]; then
    export GMEMD_REAL_SYSTEMD_TIMED=1
    exec timeout --kill-after=20 420 bash "$0" "$@"
fi

skip() {
    echo "skipped: $*"
    exit 0
}
[ "$(id -u)" = 0 ] || skip "the real-systemd test needs root (namespaces, mounts)"
[ -x /lib/systemd/systemd ] || skip "no /lib/systemd/systemd"
command -v unshare >/dev/null && command -v nsenter >/dev/null || skip "no unshare/nsenter (util-linux)"
version=$(/lib/systemd/systemd --version | awk 'NR==1 {print $2}')
cgroup2=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/self/mounts)
[ -n "$cgroup2" ] || skip "no cgroup2 hierarchy mounted (systemd needs one in its cgroup namespace)"
grep -qw overlay /proc/filesystems || skip "no overlayfs (needed for a private /etc)"
unshare --pid --fork --mount --cgroup --ipc --uts --net --mount-proc true 2>/dev/null ||
    skip "cannot create PID, mount, cgroup, IPC, UTS and network namespaces here"

bin=${1:-$(cd "$repo" && swift build --show-bin-path)}
for tool in gmemd gmemctl; do [ -x "$bin/$tool" ] || { echo "no $bin/$tool: build first" >&2; exit 2; }; done

passed=0
failed=0
result() {  # NAME STATUS [DETAIL]
    if [ "$2" = 0 ]; then
        echo "PASS $1"
        passed=$((passed + 1))
    else
        echo "FAIL $1${3:+: $3}"
        failed=$((failed + 1))
    fi
}

# --- what must be unchanged afterwards -------------------------------------
canary=/tmp/gmemd-canary-$$
touch "$canary"
host_files=(/etc/passwd /etc/group /etc/shadow /etc/gshadow)
host_sums=$(md5sum "${host_files[@]}" 2>/dev/null)

# --- the namespace ---------------------------------------------------------
stage=$(mktemp -d /tmp/gmemd-real-systemd.XXXXXX)
mkdir "$stage/units" "$stage/payload"
STAGE_UNITS=$stage/units . "$here/real-systemd/units.sh"
cp "$bin/gmemd" "$bin/gmemctl" "$stage/payload/"
cp "$here/gmemd.socket" "$here/gmemd.service" "$here/gmemd.sysusers.conf" "$here/gmemd.env" \
    "$repo/README.md" "$stage/payload/"
# Our own cgroup on the host's cgroup2 hierarchy: the root of the new cgroup
# namespace, so systemd's cgroups live under it and are removed with it.
cgroup_dir=$cgroup2$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
cgroup_dir=${cgroup_dir%/}/gmemd-real-systemd.$$
mkdir "$cgroup_dir"

unshare_pid=
pid1=
cleanup() {
    trap - EXIT INT TERM
    # The namespace's PID 1, by its pid: the kernel then kills every process in it.
    # unshare reaps it and exits; it is killed too only if it lingers.
    [ -n "$pid1" ] && kill -KILL "$pid1" 2>/dev/null
    if [ -n "$unshare_pid" ]; then
        for _ in $(seq 50); do
            kill -0 "$unshare_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$unshare_pid" 2>/dev/null
        wait "$unshare_pid" 2>/dev/null
    fi
    for _ in $(seq 50); do
        [ -z "$(cat "$cgroup_dir/cgroup.procs" 2>/dev/null)" ] && ! grep -q 'populated 1' "$cgroup_dir/cgroup.events" 2>/dev/null && break
        sleep 0.1
    done
    [ -d "$cgroup_dir" ] && find "$cgroup_dir" -depth -type d -exec rmdir {} + 2>/dev/null
    rm -rf "$stage"
}
interrupted() {
    echo "real-systemd-test.sh: interrupted; killing the namespace" >&2
    cleanup
    rm -f "$canary"
    exit 1
}
trap interrupted INT TERM
trap cleanup EXIT

(
    echo "$BASHPID" >"$cgroup_dir/cgroup.procs"
    exec unshare --pid --fork --mount --cgroup --ipc --uts --net --kill-child --mount-proc \
        bash "$here/real-systemd/namespace-setup.sh" "$stage"
) >"$stage/unshare.log" 2>&1 &
unshare_pid=$!
for _ in $(seq 100); do
    pid1=$(cat /proc/"$unshare_pid"/task/*/children 2>/dev/null | awk '{print $1}')
    [ -n "$pid1" ] && [ "$(readlink /proc/"$pid1"/exe 2>/dev/null)" = /usr/lib/systemd/systemd ] && break
    pid1=
    sleep 0.1
done

# Runs a command in the namespace (as root, in systemd's filesystem view).
inside() {
    nsenter --target "$pid1" --mount --uts --ipc --net --pid --cgroup --root --wd -- "$@"
}
booted=
if [ -n "$pid1" ]; then
    for _ in $(seq 100); do
        state=$(inside systemctl is-system-running 2>/dev/null)
        case $state in running | degraded) booted=1 && break ;; esac
        sleep 0.2
    done
fi
if [ -z "$booted" ]; then
    result "boot systemd $version as PID 1 of private namespaces" 1 "state ${state:-none}"
    cat "$stage/unshare.log" >&2
    [ -n "$pid1" ] && cat /proc/"$pid1"/root/run/gmemd-test/console >&2 2>/dev/null
else
    result "boot systemd $version as PID 1 of private namespaces ($state)" 0
    STAGE=$stage . "$here/real-systemd/checks.sh"
fi

# --- isolation, checked after the namespace is gone ------------------------
cleanup
[ -e "$canary" ]
result "isolation: the canary in the host's /tmp survived" $?
[ "$(md5sum "${host_files[@]}" 2>/dev/null)" = "$host_sums" ]
result "isolation: the host's passwd, group, shadow and gshadow are unchanged" $?
gone() { [ -z "$1" ] || [ ! -e "/proc/$1" ] || grep -q '^State:.*Z' "/proc/$1/status"; }
gone "$pid1" && gone "$unshare_pid" && [ ! -d "$cgroup_dir" ]
result "isolation: no process of the namespace is left (PID 1 and its cgroup are gone)" $?
rm -f "$canary"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
