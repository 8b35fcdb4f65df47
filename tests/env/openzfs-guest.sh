#!/usr/bin/env bash
# Builds, once, the OpenZFS guest that tests/e2e/src/guest.rs boots under
# qemu, and prints the directory holding it (image.raw, vmlinuz, initrd.img,
# zfs-version). The recipe is tests/env/openzfs-guest/{build,configure}.sh:
# Debian trixie, its own kernel, OpenZFS 2.4 from trixie-backports built by
# dkms, systemd, the qemu guest agent, sanoid/syncoid, restic, openssh,
# PostgreSQL, barman-cli-cloud, faketime and the tools the tests use.
#
# Cached in $ZPERSIST_OPENZFS_GUEST_CACHE (default
# /var/cache/zpersist-openzfs-guest) under the SHA-256 of the recipe (this
# file and the two scripts): changing the recipe builds a new image and
# removes the old ones; running this again with the image there prints its
# path and does nothing else. Builds are serialised by a lock. The first
# build takes about 15 minutes on 2 cores (dkms compiling OpenZFS is most
# of it); the booted guest the tests save beside it is made by the first
# test binary that boots it (about a minute under TCG).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${ZPERSIST_OPENZFS_GUEST_CACHE:-/var/cache/zpersist-openzfs-guest}
key=$(cat "$here/openzfs-guest.sh" "$here/openzfs-guest/build.sh" "$here/openzfs-guest/configure.sh" |
    sha256sum | cut -c1-16)
dir=$cache/$key
done_marker=.complete

if [ -f "$dir/$done_marker" ]; then
    echo "$dir"
    exit 0
fi
for tool in debootstrap mke2fs qemu-system-x86_64 qemu-img; do
    if ! command -v "$tool" >/dev/null; then
        echo "error: $tool is not installed; tests/env/install.sh installs it" >&2
        exit 1
    fi
done
mirror=$("$here/apt-mirror.sh" bookworm)

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -f "$dir/$done_marker" ]; then
    echo "$dir"
    exit 0
fi
build=$cache/build-$$
cleanup() {
    for d in dev/pts dev sys proc; do
        if mountpoint -q "$build/root/$d" 2>/dev/null; then umount "$build/root/$d"; fi
    done
    rm -rf "$build"
}
trap cleanup EXIT
echo "building the OpenZFS guest $dir from $mirror (once; about 15 minutes)" >&2
start=$(date +%s)
if ! "$here/openzfs-guest/build.sh" "$build" "$mirror"; then
    for log in "$build"/*.log; do
        [ -f "$log" ] && cp "$log" "$cache/last-failed-$(basename "$log")"
    done
    echo "error: building the OpenZFS guest failed; its logs are $cache/last-failed-*.log" >&2
    exit 1
fi
echo "first build: $(($(date +%s) - start)) s" >>"$build/timings.txt"
for old in "$cache"/*/; do
    old=${old%/}
    [ "$old" = "$build" ] && continue
    # A guest a running test boots from stays; a later build removes it.
    if fuser -s "$old/image.raw" 2>/dev/null; then
        echo "keeping $old: a running guest boots from it" >&2
        continue
    fi
    rm -rf "$old"
done
touch "$build/$done_marker"
mv "$build" "$dir"
trap - EXIT
echo "built $dir in $(($(date +%s) - start)) s" >&2
echo "$dir"
