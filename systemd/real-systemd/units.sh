# Sourced by real-systemd-test.sh: writes the unit directory the namespace's
# systemd gets (everything else it sees is empty). STAGE_UNITS is the target.

# The journal units come from the host's systemd (same version as PID 1).
# systemd-journald-dev-log.socket creates /dev/log in the private /dev.
# The audit socket is left out: audit is not per network namespace, so it
# would read the host's audit messages.
for unit in systemd-journald.service systemd-journald.socket systemd-journald-dev-log.socket; do
    cp "/usr/lib/systemd/system/$unit" "$STAGE_UNITS/"
done

# The boot target: journald and sockets.target (where `systemctl enable
# gmemd.socket` links the socket), nothing else.
cat >"$STAGE_UNITS/gmemd-test.target" <<'UNIT'
[Unit]
Description=gmemd real-systemd test
Requires=systemd-journald.socket systemd-journald.service
Wants=systemd-journald-dev-log.socket sockets.target
After=systemd-journald.service
AllowIsolate=yes
UNIT
# Empty stand-ins for the targets every unit's default dependencies name.
for target in sockets sysinit basic shutdown multi-user; do
    printf '[Unit]\nDescription=%s.target of the gmemd real-systemd test\n' "$target" >"$STAGE_UNITS/$target.target"
done
