#!/usr/bin/env bash
# Starts the zfs-fuse daemon unless it already answers, and waits for it.
# A daemon that does not answer `zpool list` within $ZFS_FUSE_PROBE_SECONDS
# (10) is wedged: it is killed and a new one started (the tests' watchdog,
# tests/e2e/src/zfs_watchdog.rs, runs this when a zfs call hangs). One run
# at a time (a lock in /run).
set -euo pipefail

probe_seconds=${ZFS_FUSE_PROBE_SECONDS:-10}
pidfile=/run/zfs-fuse.pid
exec 9>/run/zfs-fuse-start.lock
flock -w 120 9 || { echo "error: another tests/env/start-zfs.sh held /run/zfs-fuse-start.lock for 120 s" >&2; exit 1; }

remove_stale_test_pools() {
    # Pools of an earlier, killed test run (TestPool names them zt<pid>x<n>...).
    { timeout -k 2 "$probe_seconds" zpool list -H -o name 2>/dev/null | grep -E '^zt[0-9]+x[0-9]+' || true; } | while read -r pool; do
        pid=${pool#zt}; pid=${pid%%x*}
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "removing stale test pool $pool"
            timeout -k 2 60 zpool destroy -f "$pool" 2>/dev/null || true
        fi
    done
}

# This mount namespace's zfs-fuse daemon (the pidfile's, else the one
# found in /proc; never a container's, which has a namespace of its own).
daemon_pid() {
    local pid
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = zfs-fuse ]; then
        echo "$pid"
        return
    fi
    for dir in /proc/[0-9]*; do
        [ "$(cat "$dir/comm" 2>/dev/null)" = zfs-fuse ] || continue
        [ "$(readlink "$dir/ns/mnt")" = "$(readlink /proc/self/ns/mnt)" ] || continue
        echo "${dir#/proc/}"
        return
    done
}

status=0
timeout -k 2 "$probe_seconds" zpool list >/dev/null 2>&1 || status=$?
if [ "$status" = 0 ]; then
    # The pidfile names the daemon (one started by an older checkout's
    # start-zfs.sh may have lost it).
    pid=$(daemon_pid)
    [ -z "$pid" ] || [ "$(cat "$pidfile" 2>/dev/null)" = "$pid" ] || echo "$pid" >"$pidfile"
    remove_stale_test_pools
    exit 0
fi
if { [ "$status" = 124 ] || [ "$status" = 137 ]; } && pid=$(daemon_pid) && [ -n "$pid" ]; then
    echo "zfs-fuse (pid $pid) did not answer \`zpool list\` in $probe_seconds s: killed it"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    [ ! -d "/proc/$pid" ] || { echo "error: zfs-fuse (pid $pid) did not die within 10 s of SIGKILL" >&2; exit 1; }
fi
if [ -z "$(daemon_pid)" ]; then
    # A daemon that was killed leaves its FUSE mounts behind ("Transport
    # endpoint is not connected"); the new daemon cannot mount over them.
    awk '$3 == "fuse.zfs" { print $2 }' /proc/mounts | sort -r | while read -r mnt; do
        umount -l "$mnt" 2>/dev/null || true
    done
    # zfs-fuse exits silently with status 0 when a stale pidfile exists.
    rm -f "$pidfile"
    # Its output to a log, so that it never holds the caller's pipes open,
    # and never holds this script's lock. It fails when a daemon started
    # meanwhile (by a start-zfs.sh of an older checkout, which takes no
    # lock): the wait below then finds that one.
    zfs-fuse --pidfile "$pidfile" </dev/null >>/run/zfs-fuse.log 2>&1 9>&- ||
        echo "zfs-fuse did not start (exit status $?; see /run/zfs-fuse.log)"
fi
for _ in $(seq 1 100); do
    if timeout -k 2 "$probe_seconds" zpool list >/dev/null 2>&1; then
        pid=$(daemon_pid)
        [ -z "$pid" ] || [ "$(cat "$pidfile" 2>/dev/null)" = "$pid" ] || echo "$pid" >"$pidfile"
        echo "started zfs-fuse (pid $pid)"
        # A restarted daemon re-imports pools but does not mount them.
        timeout -k 2 60 zfs mount -a 2>/dev/null || true
        remove_stale_test_pools
        exit 0
    fi
    sleep 0.1
done
echo "error: zfs-fuse did not answer within 10 s (is /dev/fuse available? try 'modprobe fuse')" >&2
exit 1
