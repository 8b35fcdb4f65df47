#!/usr/bin/env bash
# Builds, once, the Debian root that the systemd tests boot with
# `systemd-nspawn --boot` (tests/e2e/src/container.rs), and prints its path.
#
# The root is a minimal Debian 12 with systemd as init, zfs-fuse (real ZFS
# in user space, started by the tests' own unit: Debian's zfs-fuse.service
# cannot run in a container), rsync (migrate-to-dataset copies with it) and
# sanoid (its syncoid is what the replication units run), and PostgreSQL 15
# (Debian's postgresql-15: the PITR test runs the real server as
# postgresql.service; Debian's own cluster and unit are removed/disabled),
# and barman-cli-cloud (barman-cloud-*, which the PITR units of an S3
# repository run; its python3 is the host's, so the S3 test runs the
# host's moto venv, bound read-only, inside the container).
# Containers never write to it: each boots an overlay of it.
#
# Cached in $ZPERSIST_TEST_ROOT_CACHE (default /var/cache/zpersist-test-root)
# under the SHA-256 of this file: the recipe is this file, so changing it
# builds a new root and removes the old ones; running it again with the
# root there prints the path and does nothing else. Builds are serialised
# by a lock, so tests and scripts/test can all call it. The Debian mirror is
# the one apt already uses on this machine (its sources), never a name
# written here. Safe to run again.
set -euo pipefail

suite=bookworm
packages=systemd,systemd-sysv,dbus,zfs-fuse,rsync,sanoid,postgresql-15,barman-cli-cloud

script=$(readlink -f "${BASH_SOURCE[0]}")
cache=${ZPERSIST_TEST_ROOT_CACHE:-/var/cache/zpersist-test-root}
key=$(sha256sum "$script" | cut -c1-16)
root=$cache/$key
done_marker=.zpersist-test-root-complete

if [ -f "$root/$done_marker" ]; then
    echo "$root"
    exit 0
fi

for tool in debootstrap systemd-nspawn; do
    if ! command -v "$tool" >/dev/null; then
        echo "error: $tool is not installed; tests/env/install.sh installs it (apt-get install debootstrap systemd-container)" >&2
        exit 1
    fi
done

# The first `URIs:` (deb822) or `deb URI` (one-line) source of $suite in
# apt's own configuration.
mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v suite="$suite" '
            function flush() {
                if (is_deb && has_suite && uri != "") { print uri; found = 1; exit }
                is_deb = 0; has_suite = 0; uri = ""
            }
            /^[[:space:]]*$/ { flush(); next }
            /^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") is_deb = 1 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) has_suite = 1 }
            /^URIs:/ { uri = $2 }
            END { if (!found) flush() }
        ' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        # deb [options] URI SUITE COMPONENTS...
        sed -e 's/\[[^]]*\]//' "$f" | awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2 }'
    done
}
url=$(mirror | head -n1)
if [ -z "$url" ]; then
    echo "error: apt has no source for Debian $suite in /etc/apt/sources.list or /etc/apt/sources.list.d; the test root is built from the mirror apt uses" >&2
    exit 1
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
# Another caller may have built it while this one waited.
if [ -f "$root/$done_marker" ]; then
    echo "$root"
    exit 0
fi

build=$cache/build-$$
rm -rf "$build"
trap 'rm -rf "$build"' EXIT
echo "building the systemd test root $root from $url (once; about a minute)" >&2
start=$(date +%s)
if ! debootstrap --variant=minbase --include="$packages" "$suite" "$build" "$url" >"$cache/debootstrap.log" 2>&1; then
    tail -n 30 "$cache/debootstrap.log" >&2
    echo "error: debootstrap failed; the whole log is $cache/debootstrap.log" >&2
    exit 1
fi
# The tests start zfs-fuse with a unit of their own.
chroot "$build" systemctl disable zfs-fuse.service >/dev/null 2>&1 || true
chroot "$build" systemctl mask zfs-fuse.service >/dev/null
# PostgreSQL: only the binaries (/usr/lib/postgresql/15/bin). The cluster
# postgresql-common creates at install and Debian's units go: the tests run
# PostgreSQL through NixOS's postgresql.service.
if [ -d "$build/etc/postgresql/15/main" ]; then
    chroot "$build" pg_dropcluster 15 main >/dev/null
fi
chroot "$build" systemctl disable postgresql.service >/dev/null 2>&1 || true
chroot "$build" systemctl mask postgresql@.service >/dev/null
echo zpersist-test >"$build/etc/hostname"
# Debootstrap's package cache is not needed to boot.
rm -rf "$build"/var/cache/apt/archives/*.deb "$build"/var/lib/apt/lists/*

# Roots of earlier recipes go (and what a killed build left); this one
# takes their place. A root a running container boots from (the lower
# directory of a mounted overlay: another checkout testing with another
# recipe) stays; a later build removes it.
for old in "$cache"/*/; do
    old=${old%/}
    [ "$old" = "$build" ] && continue
    if grep -q "lowerdir=$old[,:]" /proc/mounts; then
        echo "keeping $old: a running test container boots from it" >&2
        continue
    fi
    rm -rf "$old"
done
touch "$build/$done_marker"
mv "$build" "$root"
trap - EXIT
echo "built $root in $(($(date +%s) - start)) s" >&2
echo "$root"
