# Sourced by real-systemd-test.sh once the namespace's systemd runs: installs
# gmemd as README.md says and runs each check. Uses `inside` (a command in
# the namespace) and `result NAME STATUS [DETAIL]` from the caller.

socket=/run/gmemd/gmemd.sock
ctl() { inside gmemctl --socket "$socket" "$@"; }
main_pid() { inside systemctl show -p MainPID --value gmemd.service; }
info_field() { ctl info | awk -v key="$1" '$1 == key {print $2}'; }
# What a restart must keep: bytes written at two places, the page map (two
# shared pages among private ones) and the region_id.
snapshot() {
    ctl read 0x1000 16
    ctl read 0x10000 4096 | md5sum
    ctl pages 0 8
    info_field region_id
}
# Waits until gmemd.service runs a main process other than OLD and is active
# (Type=notify: only after READY=1); fails after SECONDS.
wait_restarted() {  # OLD SECONDS
    local deadline=$((SECONDS + $2)) pid
    while [ $SECONDS -lt $deadline ]; do
        pid=$(main_pid)
        if [ "$pid" != 0 ] && [ "$pid" != "$1" ] && [ "$(inside systemctl is-active gmemd.service)" = active ]; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}
# A restart of the kind CAUSE keeps memory and region_id and sets RECOVERED.
check_recovery() {  # NAME COMMAND...
    local name=$1 before old detail=
    shift
    before=$(snapshot)
    old=$(main_pid)
    "$@"
    wait_restarted "$old" 30 || detail="no restart within 30 s"
    [ -z "$detail" ] && [ "$(snapshot)" != "$before" ] && detail="memory, page map or region_id differ"
    [ -z "$detail" ] && ! info_field region_flags | grep -q RECOVERED && detail="HELLO lacks RECOVERED"
    result "$name: same region_id, RECOVERED, every acknowledged byte and attribute back" "$([ -z "$detail" ]; echo $?)" "$detail"
}

# --- install, as README.md's "Install as a service" says ---------------------
inside bash -ec '
    cd /run/gmemd-test
    install -m 0755 gmemd gmemctl /usr/local/bin/
    install -m 0644 gmemd.socket gmemd.service /etc/systemd/system/
    install -m 0644 -D gmemd.sysusers.conf /usr/lib/sysusers.d/gmemd.conf
    install -m 0644 -D README.md /usr/local/share/doc/gmemd/README.md
    [ -e /etc/default/gmemd ] || install -m 0644 gmemd.env /etc/default/gmemd
    systemd-sysusers
    systemctl daemon-reload
    systemctl enable --now gmemd.socket
' >"$STAGE/install.log" 2>&1
result "install as README.md says (binaries, units, systemd-sysusers, enable --now gmemd.socket)" $? "$(tail -3 "$STAGE/install.log")"

# --- socket activation -------------------------------------------------------
before=$(inside systemctl is-active gmemd.service)
ctl info >/dev/null
[ "$before" = inactive ] && [ "$(inside systemctl is-active gmemd.service)" = active ]
result "socket activation: gmemd.service starts on the first connection" $? "before: $before"

status=$(inside systemctl show -p Type -p StatusText -p NotifyAccess gmemd.service)
grep -qx 'Type=notify' <<<"$status" && grep -q '^StatusText=.* region 0x' <<<"$status"
result "Type=notify readiness and a STATUS= line ($(sed -n 's/^StatusText=//p' <<<"$status"))" $? "$status"

region=$(info_field region_id)
journal_ids=$(inside journalctl -u gmemd.service -o export | LC_ALL=C sed -n 's/^GMEM_REGION_ID=//p' | sort -u)
[[ $region =~ ^0x[0-9a-f]{16}$ ]] && grep -q "region $region[,;]" <<<"$status" && [ "$journal_ids" = "$region" ]
result "region_id reads $region in gmemctl, STATUS= and GMEM_REGION_ID" $? "journal: $journal_ids"

# systemd holds the store's fds: the guest memfd and the state memfd.
stored=$(inside ls -l /proc/1/fd | grep -oE 'memfd:gmemd-(guest|state)' | sort | tr '\n' ' ')
[ "$stored" = "memfd:gmemd-guest memfd:gmemd-state " ]
result "two fds in the fd store (guest and state memfd)" $? "PID 1 holds: ${stored:-none}"

fields=$(inside journalctl -u gmemd.service -o export | grep -aoE '^GMEM_[A-Z_]+=' | sort -u | tr '\n' ' ')
grep -q 'GMEM_REGION_ID=' <<<"$fields" && grep -q 'GMEM_SOCKET=' <<<"$fields"
result "journald entries carry GMEM_* fields ($fields)" $?

warnings=$(inside journalctl -u gmemd.service -o cat | grep -c 'Failed to set thread priority')
[ "$warnings" = 0 ]
result "no libdispatch thread-priority warning at start" $? "$warnings lines"

# --- the sandbox ---------------------------------------------------------------
pid=$(main_pid)
user=$(inside ps -o user= -p "$pid")
caps=$(inside grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' "/proc/$pid/status" | awk '{print $2}' | sort -u)
[ "$user" = gmem ] && [ "$caps" = 0000000000000000 ]
result "gmemd runs as user gmem with no capabilities" $? "user $user, capability sets $caps"

inside useradd --system --no-create-home --no-user-group --gid nogroup gmem-outsider
inside useradd --system --no-create-home --no-user-group --gid nogroup --groups gmem gmem-member
as_user() { inside setpriv --reuid="$1" --regid=nogroup --init-groups gmemctl --socket "$socket" info; }
outsider=$(as_user gmem-outsider 2>&1)
outsider_status=$?
member=$(as_user gmem-member 2>&1)
[ "$outsider_status" != 0 ] && grep -qE 'EACCES|Permission denied' <<<"$outsider" && grep -q "^region_id *$region" <<<"$member"
result "a user outside group gmem is refused (permission denied), a member is admitted" $? "outsider: $outsider; member: $member"

# --- recovery --------------------------------------------------------------------
ctl write 0x1000 --hex 48656c6c6f2c20677565737421 >/dev/null
ctl write 0x10000 --hex "$(head -c 4096 /dev/urandom | od -An -v -tx1 | tr -d ' \n')" >/dev/null
ctl convert 0x4000 8K --shared >/dev/null
check_recovery "SIGKILL of the main process" inside systemctl kill --kill-who=main --signal=KILL gmemd.service
check_recovery "systemctl restart" inside systemctl restart gmemd.service

# The stall seam wedges an event loop 2 s after READY=1, in one process only:
# the drop-in is gone before the watchdog's restart reads the unit again.
dropin=/etc/systemd/system/gmemd.service.d/test-stall.conf
inside mkdir -p "$(dirname "$dropin")"
printf '[Service]\nEnvironment=GMEMD_TEST_STALL_LOOP=120@2\n' | inside tee "$dropin" >/dev/null
inside systemctl daemon-reload
before=$(snapshot)
inside systemctl restart gmemd.service
stalled=$(main_pid)
inside rm "$dropin"
inside systemctl daemon-reload
detail=
for _ in $(seq 100); do
    inside journalctl -u gmemd.service "_PID=$stalled" -o cat | grep -q 'blocking an event loop' && break
    sleep 0.1
done
start=$(date +%s%N)
if wait_restarted "$stalled" 40; then
    elapsed=$((($(date +%s%N) - start) / 1000000))
    [ "$elapsed" -le 15000 ] || detail="restarted after $elapsed ms"
else
    elapsed=timeout
    detail="no restart within 40 s"
fi
why=$(inside journalctl -u gmemd.service -o cat | grep -E 'Watchdog timeout|withholding WATCHDOG|SIGABRT|status=6/ABRT' | tr '\n' '|')
[ -z "$detail" ] && ! grep -q 'Watchdog timeout' <<<"$why" && detail="the journal does not say why: $why"
[ -z "$detail" ] && [ "$(snapshot)" != "$before" ] && detail="memory, page map or region_id differ"
result "wedged event loop: watchdog restart in $elapsed ms (limit WatchdogSec + 5 s = 15 s), memory intact" \
    "$([ -z "$detail" ]; echo $?)" "$detail"
inside journalctl -u gmemd.service -o short-monotonic --no-pager -n 12 | sed 's/^/    /'

# --- the recorded exposure ------------------------------------------------------
recorded=$(grep -oE 'exposure \*\*[0-9.]+' "$repo/README.md")
recorded=${recorded##*\*\*}
exposure=$(inside systemd-analyze security --no-pager gmemd.service | awk '/Overall exposure level/ {print $(NF-2)}')
[ -n "$exposure" ] && [ "$exposure" = "$recorded" ]
result "systemd-analyze security: exposure $exposure (README.md records $recorded)" $?

# --- stop discards the store (systemd < 254) --------------------------------------
inside systemctl stop gmemd.service gmemd.socket
inside systemctl start gmemd.socket
fresh=$(info_field region_id)
[ -n "$fresh" ] && [ "$fresh" != "$region" ] && ! info_field region_flags | grep -q RECOVERED
result "systemctl stop of service and socket: the next start has a new region ($fresh)" $?
