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
# The runbooks (docs/runbooks) read replication.json and restic's listing
# with jq; tests/e2e/tests/runbooks.rs runs them.
command -v jq >/dev/null || need+=(jq)
# The systemd tests boot a Debian root (tests/env/container-root.sh builds it).
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v debootstrap >/dev/null || need+=(debootstrap)
# PostgreSQL 15 ships with the machine; naming it here would upgrade it.
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
# PITR's object-storage backend (barman-cloud-*), and a venv for the S3
# server its tests run on loopback (moto, from PyPI; Debian packages none).
command -v barman-cloud-wal-archive >/dev/null || need+=(barman-cli-cloud)
[ -x /usr/bin/python3 ] || need+=(python3)
/usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)

if [ "${#need[@]}" -gt 0 ]; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# moto's S3 server (tests/env/start-moto.sh), in a venv of Debian's python3
# under a cache directory, created when missing. pip reaches PyPI only.
moto_venv=${ZPERSIST_MOTO_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/zpersist-test/moto-venv}
if [ ! -x "$moto_venv/bin/moto_server" ]; then
    echo "installing moto into $moto_venv"
    rm -rf "$moto_venv"
    mkdir -p "$(dirname "$moto_venv")"
    /usr/bin/python3 -m venv "$moto_venv"
    "$moto_venv/bin/pip" install --quiet --disable-pip-version-check 'moto[s3]==5.*' flask flask-cors
fi

# The OpenZFS guest (tests/env/openzfs-guest.sh builds it, tests/e2e/src/guest.rs
# boots it): qemu 10 from bookworm-backports (its `file:` migration saves the
# booted guest; it installs beside bookworm's libraries), qemu-img, debootstrap
# and mke2fs (the image is made without loop devices). Backports are reached
# through an apt state of their own, so the machine's sources stay as they are;
# the mirror is the one apt already uses for bookworm.
if ! command -v qemu-system-x86_64 >/dev/null || ! command -v qemu-img >/dev/null; then
    mirror=$("$(dirname "${BASH_SOURCE[0]}")/apt-mirror.sh" bookworm)
    state=/var/cache/zpersist-test-apt-backports
    mkdir -p "$state/sources" "$state/lists/partial" "$state/cache/archives/partial"
    cat >"$state/sources/backports.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    chown -R _apt "$state/lists" "$state/cache" 2>/dev/null || true
    apt_bp=(apt-get -o Dir::Etc::sourcelist=/dev/null -o Dir::Etc::sourceparts="$state/sources"
        -o Dir::State::Lists="$state/lists" -o Dir::Cache="$state/cache")
    echo "installing: qemu-system-x86 qemu-utils (bookworm-backports)"
    export DEBIAN_FRONTEND=noninteractive
    "${apt_bp[@]}" update -qq
    "${apt_bp[@]}" install -y -qq --no-install-recommends -t bookworm-backports \
        qemu-system-x86 qemu-utils >/dev/null
fi
command -v mke2fs >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq e2fsprogs >/dev/null
