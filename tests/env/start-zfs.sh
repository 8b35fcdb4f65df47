#!/usr/bin/env bash
# Starts the zfs-fuse daemon unless it already answers, and waits for it.
set -euo pipefail

remove_stale_test_pools() {
    # Pools of an earlier, killed test run (TestPool names them zt<pid>x<n>...).
    { zpool list -H -o name 2>/dev/null | grep -E '^zt[0-9]+x[0-9]+' || true; } | while read -r pool; do
        pid=${pool#zt}; pid=${pid%%x*}
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "removing stale test pool $pool"
            zpool destroy -f "$pool" 2>/dev/null || true
        fi
    done
}

if zpool list >/dev/null 2>&1; then
    remove_stale_test_pools
    exit 0
fi
# A daemon that was killed leaves its FUSE mounts behind ("Transport endpoint
# is not connected"); the new daemon cannot mount over them.
awk '$3 == "fuse.zfs" { print $2 }' /proc/mounts | sort -r | while read -r mnt; do
    umount -l "$mnt" 2>/dev/null || true
done
pidfile=/run/zfs-fuse.pid
# zfs-fuse exits silently with status 0 when a stale pidfile exists.
rm -f "$pidfile"
zfs-fuse --pidfile "$pidfile"
for _ in $(seq 1 100); do
    if zpool list >/dev/null 2>&1; then
        # A restarted daemon re-imports pools but does not mount them.
        zfs mount -a 2>/dev/null || true
        remove_stale_test_pools
        exit 0
    fi
    sleep 0.1
done
echo "error: zfs-fuse did not answer within 10 s (is /dev/fuse available? try 'modprobe fuse')" >&2
exit 1
