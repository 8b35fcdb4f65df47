#!/usr/bin/env bash
# Configures the OpenZFS guest's root (build.sh calls it): headless, no
# network, the checkout and cargo's target directory shared read-only by 9p
# (mounted on first use, so a booted guest can be saved before), a fixed
# hostid and machine id, nothing periodic, ZFS's own units enabled as Debian
# ships them, Debian's PostgreSQL cluster and units out of the way (tests run
# the server themselves), a small initrd.
# Usage: configure.sh ROOT
set -euo pipefail
r=${1:?root dir}
ch=(chroot "$r" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin)
mnt() { for d in proc sys dev dev/pts; do mountpoint -q "$r/$d" || mount --bind "/$d" "$r/$d"; done; }
umnt() { for d in dev/pts dev sys proc; do if mountpoint -q "$r/$d"; then umount "$r/$d"; fi; done; }
trap umnt EXIT
mnt
printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
chmod +x "$r/usr/sbin/policy-rc.d"
echo zpersist-guest >"$r/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 zpersist-guest\n' >"$r/etc/hosts"
mkdir -p "$r/mnt/repo" "$r/mnt/target"
opts=trans=virtio,version=9p2000.L,msize=1048576,cache=none,ro,noauto,x-systemd.automount,x-systemd.device-timeout=10s
cat >"$r/etc/fstab" <<FSTAB
/dev/vda  /            ext4  rw,noatime,errors=remount-ro  0 1
repo      /mnt/repo    9p    $opts  0 0
target    /mnt/target  9p    $opts  0 0
FSTAB
"${ch[@]}" passwd -d root >/dev/null
# The serial console logs in root (for debugging with console.log's socket).
mkdir -p "$r/etc/systemd/system/serial-getty@ttyS0.service.d"
cat >"$r/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf" <<'AL'
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 - $TERM
AL
# An unprivileged user and group for the delegation tests.
"${ch[@]}" id tester >/dev/null 2>&1 || "${ch[@]}" useradd -m -s /bin/bash -u 1001 tester
"${ch[@]}" getent group zfsdelegates >/dev/null || "${ch[@]}" groupadd -g 1100 zfsdelegates
"${ch[@]}" usermod -aG zfsdelegates tester
rm -f "$r/etc/machine-id"
"${ch[@]}" systemd-machine-id-setup >/dev/null
"${ch[@]}" zgenhostid -f 0x5a504552
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer dpkg-db-backup.timer \
    systemd-tmpfiles-clean.timer man-db.timer sanoid.timer sanoid-prune.service sanoid.service \
    zfs-scrub-monthly@.timer zfs-trim-monthly@.timer ssh.service ssh.socket getty@tty1.service; do
    "${ch[@]}" systemctl mask "$u" >/dev/null 2>&1 || true
done
"${ch[@]}" systemctl enable zfs-load-module.service zfs-import-cache.service zfs-mount.service \
    zfs-import.target zfs.target >/dev/null
"${ch[@]}" systemctl disable zfs-zed.service >/dev/null 2>&1 || true
if [ -d "$r/etc/postgresql" ]; then
    for c in "$r"/etc/postgresql/*/main; do
        [ -d "$c" ] || continue
        v=$(basename "$(dirname "$c")")
        "${ch[@]}" pg_dropcluster "$v" main >/dev/null 2>&1 || true
    done
fi
"${ch[@]}" systemctl disable postgresql.service >/dev/null 2>&1 || true
"${ch[@]}" systemctl mask postgresql@.service >/dev/null 2>&1 || true
# Modules a headless guest does not need (each costs seconds under TCG).
printf 'blacklist %s\n' kvm_amd kvm_intel kvm ccp iTCO_wdt iTCO_vendor_support intel_pmc_bxt lpc_ich i2c_i801 \
    pcspkr drm efi_pstore serio_raw psmouse evdev >"$r/etc/modprobe.d/zz-testvm-blacklist.conf"
"${ch[@]}" systemctl set-default multi-user.target >/dev/null
cat >"$r/etc/initramfs-tools/conf.d/zz-vm.conf" <<'IC'
MODULES=list
COMPRESS=zstd
IC
printf 'virtio_pci\nvirtio_blk\next4\ncrc32c_generic\n' >"$r/etc/initramfs-tools/modules"
kver=$(ls "$r/lib/modules" | sort -V | tail -1)
nice -n 19 "${ch[@]}" update-initramfs -u -k "$kver" >/dev/null
"${ch[@]}" depmod -a "$kver"
rm -f "$r/usr/sbin/policy-rc.d"
"${ch[@]}" apt-get clean
rm -rf "$r"/var/lib/apt/lists/*_Packages* "$r"/var/cache/apt/*.bin
echo "configured $r (kernel $kver)"
