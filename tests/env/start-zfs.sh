#!/usr/bin/env bash
# Starts the zfs-fuse daemon unless it already answers, and waits for it.
set -euo pipefail

if zpool list >/dev/null 2>&1; then
    exit 0
fi
pidfile=/run/zfs-fuse.pid
# zfs-fuse exits silently with status 0 when a stale pidfile exists.
rm -f "$pidfile"
zfs-fuse --pidfile "$pidfile"
for _ in $(seq 1 100); do
    if zpool list >/dev/null 2>&1; then
        # A restarted daemon re-imports pools but does not mount them.
        zfs mount -a 2>/dev/null || true
        exit 0
    fi
    sleep 0.1
done
echo "error: zfs-fuse did not answer within 10 s (is /dev/fuse available? try 'modprobe fuse')" >&2
exit 1
