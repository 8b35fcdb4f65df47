#!/usr/bin/env bash
# Builds the OpenZFS guest image into OUTDIR (called by tests/env/openzfs-guest.sh,
# which caches the result; run that, not this):
#   OUTDIR/{image.raw,vmlinuz,initrd.img,zfs-version,timings.txt,*.log}
# A Debian trixie root (debootstrap, main + contrib) with the guest's own kernel
# and headers, OpenZFS 2.4 from trixie-backports built by dkms against that
# kernel (2.3 from trixie only where 2.4 does not build: zfs-version then says
# so), systemd as PID 1, the qemu guest agent, and what the tests run there.
# Then configure.sh, then an ext4 image made with `mke2fs -d` (no loop devices).
# Usage: build.sh OUTDIR MIRROR. Root. The heavy steps are niced (shared cores).
set -euo pipefail
out=${1:?outdir}
mirror=${2:?debian mirror}
mkdir -p "$out"
out=$(cd "$out" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
r=$out/root
nice_=(nice -n 19 ionice -c3)
timings=$out/timings.txt
: >"$timings"
step() {
    local name=$1 t0
    shift
    t0=$(date +%s)
    "$@"
    printf '%-20s %5d s\n' "$name" "$(($(date +%s) - t0))" | tee -a "$timings" >&2
}
include=systemd,systemd-sysv,udev,dbus,kmod,linux-image-amd64,linux-headers-amd64,initramfs-tools,zstd,e2fsprogs,procps,qemu-guest-agent,attr,less,ca-certificates
step debootstrap "${nice_[@]}" debootstrap --variant=minbase --components=main,contrib \
    --include="$include" trixie "$r" "$mirror" >"$out/debootstrap.log" 2>&1

ch=(chroot "$r" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin)
mnt() { for d in proc sys dev dev/pts; do mountpoint -q "$r/$d" || mount --bind "/$d" "$r/$d"; done; }
umnt() { for d in dev/pts dev sys proc; do if mountpoint -q "$r/$d"; then umount "$r/$d"; fi; done; }
trap umnt EXIT
mnt
# No daemon starts inside the chroot.
printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
chmod +x "$r/usr/sbin/policy-rc.d"
rm -f "$r/etc/apt/sources.list"
cat >"$r/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: trixie trixie-updates trixie-backports
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
tools="sanoid pv mbuffer lzop restic openssh-server openssh-client postgresql barman-cli-cloud faketime rsync jq sqlite3 python3 util-linux"
step apt-update "${ch[@]}" apt-get update >"$out/apt.log" 2>&1
step download "${ch[@]}" apt-get install -y --no-install-recommends --download-only \
    -t trixie-backports zfs-dkms zfsutils-linux >>"$out/apt.log" 2>&1
step tools "${nice_[@]}" "${ch[@]}" apt-get install -y --no-install-recommends $tools >>"$out/apt.log" 2>&1
kver=$(ls "$r/lib/modules" | sort -V | tail -1)
built() { ls "$r/lib/modules/$kver/updates/dkms/zfs.ko"* >/dev/null 2>&1; }
# zfs-dkms's postinst builds spl.ko and zfs.ko for the installed headers.
note=""
if ! step zfs-2.4+dkms "${nice_[@]}" "${ch[@]}" apt-get install -y --no-install-recommends \
    -t trixie-backports zfs-dkms zfsutils-linux >>"$out/apt.log" 2>&1 || ! built; then
    note=" (2.3 from trixie: 2.4 from trixie-backports did not build against $kver; see apt.log)"
    echo "OpenZFS 2.4 did not build against $kver; falling back to 2.3 from trixie" >&2
    "${ch[@]}" apt-get purge -y zfs-dkms zfsutils-linux >>"$out/apt.log" 2>&1 || true
    step zfs-2.3+dkms "${nice_[@]}" "${ch[@]}" apt-get install -y --no-install-recommends \
        -t trixie zfs-dkms zfsutils-linux >>"$out/apt.log" 2>&1
fi
built || step dkms-autoinstall "${nice_[@]}" "${ch[@]}" dkms autoinstall -k "$kver" >>"$out/apt.log" 2>&1
built || { echo "error: zfs.ko was not built for $kver; see $out/apt.log" >&2; exit 1; }
echo "$("${ch[@]}" dpkg-query -W -f '${Version}' zfs-dkms) kernel $kver$note" >"$out/zfs-version"
"${ch[@]}" dkms status | tee -a "$timings" >&2
umnt
trap - EXIT
step configure "$here/configure.sh" "$r" >"$out/configure.log" 2>&1
step image "${nice_[@]}" mke2fs -q -t ext4 -L zpersist-guest -E root_owner=0:0 -d "$r" "$out/image.raw" 6G
cp "$r/boot/vmlinuz-$kver" "$out/vmlinuz"
cp "$r/boot/initrd.img-$kver" "$out/initrd.img"
rm -rf "$r"
echo "image.raw allocated $(du -h "$out/image.raw" | cut -f1) of 6G; zfs-dkms $(cat "$out/zfs-version")" | tee -a "$timings" >&2
