#!/bin/busybox sh
# SPDX-License-Identifier: Apache-2.0
# /init of the daxpolicy VM initramfs (built by tests/vm/run-vm.sh). Loads the
# modules, builds the guest root (the host's "/" over 9p, read-only, under a
# tmpfs overlay), mounts the control share at /daxvm and hands over either to
# tests/vm/guest-run.sh (minimal flavour) or to systemd.
/bin/busybox --install -s /bin
export PATH=/bin

mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys

fail() {
  echo "daxvm-init: FAILED: $*" >/dev/console
  if [ -d /newroot/daxvm ] && grep -q ' /newroot/daxvm ' /proc/mounts; then
    echo "daxvm-init: $*" >>/newroot/daxvm/stderr
  fi
  sync
  poweroff -f
  sleep 5
  echo o >/proc/sysrq-trigger
  sleep 30
}

flavour=minimal
for arg in $(cat /proc/cmdline); do
  case $arg in
    daxvm.flavour=*) flavour=${arg#daxvm.flavour=} ;;
  esac
done

while read -r mod; do
  insmod "/lib/modules/$mod" || fail "insmod $mod"
done </modules.order

# 9p caps msize at what the virtio ring carries; larger messages speed up reads.
p9="trans=virtio,version=9p2000.L,msize=262144"
root_cache=cache=loose
mount -t 9p -o "$p9,ro,$root_cache" hostroot /lower || fail "mount of the host root over 9p"
mount -t tmpfs -o mode=0755 tmpfs /upper || fail "tmpfs for the overlay"
mkdir -p /upper/data /upper/work
mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay /newroot ||
  fail "overlay root"
mkdir -p /newroot/daxvm
mount -t 9p -o "$p9" daxvm /newroot/daxvm || fail "mount of the control share"

mount --move /dev /newroot/dev
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys

if [ "$flavour" = systemd ]; then
  r=/newroot
  # Host enablement symlinks (databases, timers, exporters...) stay on the host:
  # the guest boots the vendor units only, plus the test unit.
  rm -rf $r/etc/systemd/system/*.wants
  # The host's fstab names host disks that never appear here.
  : >$r/etc/fstab
  for unit in getty.target serial-getty@ttyS0.service getty@tty1.service \
    systemd-networkd-wait-online.service NetworkManager-wait-online.service networking.service \
    systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
    systemd-firstboot.service systemd-pstore.service apt-daily.timer apt-daily-upgrade.timer \
    e2scrub_all.timer e2scrub_reap.service fstrim.timer man-db.timer logrotate.timer \
    cloud-init.target cloud-init-local.service cloud-init.service cloud-config.service \
    cloud-final.service ssh.service smartmontools.service ndctl-monitor.service; do
    ln -sf /dev/null "$r/etc/systemd/system/$unit"
  done
  # Debian's tmpfiles empty /tmp at boot: the host's /tmp must stay visible, it
  # may hold the script to run. LSB scripts enabled on the host stay there too.
  mkdir -p $r/etc/tmpfiles.d $r/etc/systemd/system-generators
  ln -sf /dev/null $r/etc/tmpfiles.d/tmp.conf
  ln -sf /dev/null $r/etc/systemd/system-generators/systemd-sysv-generator
  cp /newroot/daxvm/daxvm-test.service $r/etc/systemd/system/daxvm-test.service
  mkdir -p $r/etc/systemd/system/multi-user.target.wants
  ln -sf ../daxvm-test.service $r/etc/systemd/system/multi-user.target.wants/daxvm-test.service
  ln -sf /lib/systemd/system/multi-user.target $r/etc/systemd/system/default.target
  exec switch_root /newroot /lib/systemd/systemd
  fail "switch_root to systemd"
fi

mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /newroot/dev/shm
mount -t tmpfs -o mode=0755 tmpfs /newroot/run
exec switch_root /newroot /bin/bash /daxvm/guest-run.sh pid1
fail "switch_root to the guest runner"
