#!/bin/bash
# Runs as PID 1 of the private namespaces real-systemd-test.sh creates
# (unshare --pid --mount --cgroup --ipc --uts --net --mount-proc), and turns
# this mount namespace into a throwaway machine before exec'ing systemd:
#
# - every mount of the host is read-only here (/proc/sys too), so nothing
#   systemd or a unit does can write to the host's filesystems;
# - /tmp, /var/tmp, /run, /var/log, /var/lib/systemd, /var/cache and /dev are
#   private tmpfs: systemd-tmpfiles or journald can only empty or fill those;
# - /etc, /usr/local and /usr/lib/sysusers.d are overlays whose upper layer is
#   a tmpfs: useradd and systemd-sysusers write only there;
# - the unit and generator directories are empty tmpfs holding only the units
#   the test names, so none of the host's enabled services (databases,
#   gettys) can start, and no host generator runs;
# - /sys/fs/cgroup is a fresh cgroup2 mount in the new cgroup namespace,
#   rooted at the cgroup the caller made for this test.
#
# Usage: namespace-setup.sh STAGE [COMMAND...]
#   STAGE holds units/ (copied into the unit directory) and payload/ (copied
#   to /run/gmemd-test). Without COMMAND it execs systemd with the test's
#   target; with one (for example /bin/sh) it execs that instead, to inspect
#   the setup without booting anything.
set -euo pipefail

stage=$1
shift
[ "$$" = 1 ] || { echo "namespace-setup.sh: must run as PID 1 of a new PID namespace" >&2; exit 2; }

# Nothing mounted here propagates back to the host.
mount --make-rprivate /

# Read-only views of every host mount but the namespace's own /proc. Deepest
# first, each separately: a bind remount changes one mount point only.
mapfile -t mounts < <(awk '{print $5}' /proc/self/mountinfo | sort -r)
for point in "${mounts[@]}"; do
    case $point in /proc | /proc/*) continue ;; esac
    mount -o remount,bind,ro "$point" 2>/dev/null || mount -o remount,ro "$point" 2>/dev/null || {
        echo "namespace-setup.sh: cannot make $point read-only" >&2
        exit 2
    }
done
# systemd writes sysctls (fs.nr_open, ...) at boot: the kernel's settings stay the host's.
for entry in /proc/sys /proc/sysrq-trigger; do
    [ -e "$entry" ] || continue
    mount --bind "$entry" "$entry"
    mount -o remount,bind,ro "$entry"
done

private_tmpfs() {  # PATH MODE
    mount -t tmpfs -o "mode=$2,nosuid,nodev" tmpfs "$1"
}
private_tmpfs /run 0755
mkdir -p /run/gmemd-test/overlay /run/gmemd-test/units
# Copied now: STAGE lies under the host's /tmp, hidden from here on.
cp -a "$stage/payload/." /run/gmemd-test/
cp -a "$stage/units/." /run/gmemd-test/units/
for point in /tmp /var/tmp; do private_tmpfs "$point" 1777; done
for point in /var/log /var/lib/systemd /var/cache; do private_tmpfs "$point" 0755; done
mkdir -p /var/log/journal

# A writable copy-on-write view of DIR whose changes live in /run.
overlay() {  # DIR
    local name
    name=$(printf '%s' "$1" | tr / _)
    mkdir -p "/run/gmemd-test/overlay/$name.upper" "/run/gmemd-test/overlay/$name.work"
    mount -t overlay overlay \
        -o "lowerdir=$1,upperdir=/run/gmemd-test/overlay/$name.upper,workdir=/run/gmemd-test/overlay/$name.work" "$1"
}
overlay /etc
overlay /usr/local
overlay /usr/lib/sysusers.d

# Unit and generator directories: empty, then only the test's units.
for point in /etc/systemd/system /usr/lib/systemd/system /usr/lib/systemd/system-generators \
    /usr/lib/systemd/system-environment-generators /usr/lib/systemd/system-preset; do
    [ -d "$point" ] && private_tmpfs "$point" 0755
done
cp -a /run/gmemd-test/units/. /usr/lib/systemd/system/

# A private /dev: the few device nodes services need, no /dev/kmsg (so
# systemd logs to /dev/console, a file here, never to the host's kernel log).
dev=/run/gmemd-test/dev
mkdir -p "$dev"
mount -t tmpfs -o mode=0755,nosuid tmpfs "$dev"
for node in null zero full random urandom tty; do
    touch "$dev/$node"
    mount --bind "/dev/$node" "$dev/$node"
done
mkdir "$dev/pts" "$dev/shm" "$dev/mqueue"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$dev/pts"
ln -s pts/ptmx "$dev/ptmx"
private_tmpfs "$dev/shm" 1777
mount -t mqueue mqueue "$dev/mqueue"
ln -s /proc/self/fd "$dev/fd"
ln -s /proc/self/fd/0 "$dev/stdin"
ln -s /proc/self/fd/1 "$dev/stdout"
ln -s /proc/self/fd/2 "$dev/stderr"
touch /run/gmemd-test/console "$dev/console"
mount --bind /run/gmemd-test/console "$dev/console"
mount --move "$dev" /dev

# The new cgroup namespace's root, writable, instead of the host's hierarchies.
umount -R -l /sys/fs/cgroup
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup

if [ $# -gt 0 ]; then
    exec "$@"
fi
# container=: systemd's documented container interface; it then skips what
# only a real machine's PID 1 does (loading modules, remounting /, ...).
exec env -i container=gmemd-test PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /lib/systemd/systemd --system --unit=gmemd-test.target </dev/null >/dev/console 2>&1
