#!/usr/bin/env bash
# Installs what the tests and the demo need on Debian 12, skipping what is
# already there. Safe to run again.
set -euo pipefail

need=()
command -v zfs-fuse >/dev/null || need+=(zfs-fuse)
command -v sanoid >/dev/null || need+=(sanoid)
command -v restic >/dev/null || need+=(restic)
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
command -v faketime >/dev/null || need+=(faketime)
command -v curl >/dev/null || need+=(curl)
command -v nix-instantiate >/dev/null || need+=(nix-bin)
command -v getent >/dev/null || need+=(libc-bin)
# migrate-to-dataset copies with rsync; its tests build a SQLite database and set xattrs.
command -v rsync >/dev/null || need+=(rsync)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v setfattr >/dev/null || need+=(attr)
# The systemd tests boot a Debian root (tests/env/container-root.sh builds it).
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v debootstrap >/dev/null || need+=(debootstrap)
# PostgreSQL 15 ships with the machine; naming it here would upgrade it.
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)

if [ "${#need[@]}" -gt 0 ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
