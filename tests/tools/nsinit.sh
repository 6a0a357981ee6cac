# Run as: unshare --mount --pid --fork --kill-child sh nsinit.sh
# with STAGE (the `make install` tree), BASE (the cached rootfs) and OV (a
# scratch directory). Lays STAGE over BASE with overlayfs, so the cached tree
# is never written, mounts what OpenRC needs, and becomes the namespace's
# pid 1 inside the chroot. Everything ends when this process is killed.
set -eu
mount --make-rprivate /
mkdir -p "$OV/upper" "$OV/work" "$OV/merged"
mount -t overlay overlay -o "lowerdir=$STAGE:$BASE,upperdir=$OV/upper,workdir=$OV/work" "$OV/merged"
M=$OV/merged
mount -t proc proc "$M/proc"
mount -t sysfs sysfs "$M/sys"
mount -t tmpfs tmpfs "$M/run"
mount -t tmpfs -o mode=755 tmpfs "$M/dev"
for d in null zero random urandom tty full; do
    touch "$M/dev/$d"
    mount --bind "/dev/$d" "$M/dev/$d"
done
for d in started starting stopping inactive wasinactive failed hotplugged daemons options exclusive scheduled tmp; do
    mkdir -p "$M/run/openrc/$d"
done
echo default >"$M/run/openrc/softlevel"
echo ready
# pid 1 must reap orphans (supervise-daemon's --stop waits for its
# supervisor to vanish, and a zombie does not).
exec chroot "$M" /usr/bin/python3 -c '
import os, time
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(0.1)
' moby-agent-test-init
