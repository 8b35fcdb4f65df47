#!/usr/bin/env bash
# Starts a test-only sshd on 127.0.0.1:58222 (replication tests send over ssh
# into a second zfs-fuse pool), unless it already runs with this config.
# Everything lives in /run/zpersist-test-sshd: host key, client key,
# authorized_keys, known_hosts pinning the host key, sshd_config, pid file.
# Sessions get the sanoid zfs wrapper first on PATH (SetEnv), because
# syncoid runs `zfs get -t` on the receiving side too. Safe to run again.
set -euo pipefail

port=58222
dir=/run/zpersist-test-sshd
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# The wrapper is copied into $dir so that the config names no checkout: two
# clones running tests at once then share one sshd instead of restarting it.
wrapper_dir="$dir/sanoid-zfs"
sshd=$(command -v sshd || echo /usr/sbin/sshd)

mkdir -p "$dir"
chmod 700 "$dir"
[ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C zpersist-test-host -f "$dir/host_ed25519"
[ -f "$dir/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C zpersist-test-client -f "$dir/client_ed25519"
cp "$dir/client_ed25519.pub" "$dir/authorized_keys"
mkdir -p "$wrapper_dir"
if ! cmp -s "$repo/tests/env/sanoid-zfs/zfs" "$wrapper_dir/zfs"; then
    install -m 755 "$repo/tests/env/sanoid-zfs/zfs" "$wrapper_dir/zfs.new"
    mv -f "$wrapper_dir/zfs.new" "$wrapper_dir/zfs"
fi
# The pinned host key, exactly as zpersist renders /etc/zpersist/known_hosts/<target>.
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" >"$dir/known_hosts"

cat >"$dir/sshd_config.new" <<CONF
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
PrintMotd no
MaxStartups 50:30:100
MaxSessions 50
SetEnv PATH=$wrapper_dir:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CONF

running() {
    [ -f "$dir/sshd.pid" ] && kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null
}

if running && cmp -s "$dir/sshd_config.new" "$dir/sshd_config"; then
    rm "$dir/sshd_config.new"
    exit 0
fi
if running; then
    kill "$(cat "$dir/sshd.pid")"
    for _ in $(seq 1 50); do running || break; sleep 0.1; done
fi
mv "$dir/sshd_config.new" "$dir/sshd_config"
# sshd refuses to start without its privilege separation directory.
mkdir -p /run/sshd
"$sshd" -t -f "$dir/sshd_config"
"$sshd" -f "$dir/sshd_config"
for _ in $(seq 1 50); do
    if ssh -o BatchMode=yes -o UserKnownHostsFile="$dir/known_hosts" -o StrictHostKeyChecking=yes \
        -i "$dir/client_ed25519" -p "$port" root@127.0.0.1 true 2>/dev/null; then
        exit 0
    fi
    sleep 0.1
done
echo "error: the test sshd on 127.0.0.1:$port does not accept the test key; see $dir/sshd_config and run '$sshd -d -f $dir/sshd_config'" >&2
exit 1
