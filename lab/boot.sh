#!/bin/sh
# Boots one lab host. Started (detached) by lab/host.py as `boot.sh outer`; every input comes
# from LAB_* environment variables so no value is ever spliced into a command line.
#
# outer: runs in the machine's namespaces. Joins the host's cgroup FIRST (systemd must get a
#        cgroup namespace rooted there, never the machine's root cgroup: it writes its slices
#        into its cgroup root), then enters the host's netns and new mount/uts/ipc/pid/cgroup
#        namespaces and re-runs itself as `inner`, which becomes PID 1 there.
# inner: mounts the host's overlay root and its kernel filesystems, pivots into it and
#        becomes systemd. When it dies, the kernel kills every process of the host and drops
#        all its mounts with the mount namespace.
set -eu

case "$1" in
outer)
    echo $$ > "$LAB_CGROUP/cgroup.procs"
    echo $$ > "$LAB_LAUNCHER_PIDFILE"
    exec ip netns exec "$LAB_NETNS" \
        unshare --mount --uts --ipc --pid --cgroup --fork --kill-child --propagation private \
        /bin/sh "$0" inner
    ;;
inner)
    root=$LAB_ROOT
    mount -t overlay overlay -o "lowerdir=$LAB_LOWER,upperdir=$LAB_UPPER,workdir=$LAB_WORK" "$root"

    mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
    # Kernel-wide sysctls stay read-only (a host's systemd-sysctl must not retune the machine);
    # net.* belongs to the host's own netns and stays writable.
    mount --bind "$root/proc/sys" "$root/proc/sys"
    mount -o remount,bind,ro "$root/proc/sys"
    mount --bind "$root/proc/sys/net" "$root/proc/sys/net"
    mount -o remount,bind,rw "$root/proc/sys/net"
    if [ -e "$root/proc/sysrq-trigger" ]; then
        mount --bind "$root/proc/sysrq-trigger" "$root/proc/sysrq-trigger"
        mount -o remount,bind,ro "$root/proc/sysrq-trigger"
    fi
    mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
    mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$root/sys/fs/cgroup"

    mount -t tmpfs -o mode=755,size=1m,nosuid tmpfs "$root/dev"
    for node in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
        IFS=: read -r name major minor <<NODE
$node
NODE
        mknod -m 666 "$root/dev/$name" c "$major" "$minor"
    done
    ln -s /proc/self/fd "$root/dev/fd"
    ln -s /proc/self/fd/0 "$root/dev/stdin"
    ln -s /proc/self/fd/1 "$root/dev/stdout"
    ln -s /proc/self/fd/2 "$root/dev/stderr"
    mkdir "$root/dev/pts" "$root/dev/shm"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$root/dev/pts"
    ln -s pts/ptmx "$root/dev/ptmx"
    # Ray's object store and vLLM's shared memory live here: one per host, sized by the lab.
    mount -t tmpfs -o "size=$LAB_SHM_SIZE,mode=1777,nosuid,nodev" tmpfs "$root/dev/shm"
    mount -t tmpfs -o mode=755,size=256m,nosuid,nodev tmpfs "$root/run"

    echo "$LAB_HOSTNAME" > /proc/sys/kernel/hostname
    echo "$LAB_HOSTNAME" > "$root/etc/hostname"
    cat "$LAB_HOSTS_FILE" > "$root/etc/hosts"
    keys=$(cat "$LAB_AUTHORIZED_KEYS")
    # Identity that must differ per host and survive restarts: created once, kept in the upper dir.
    [ -s "$root/etc/machine-id" ] || tr -d - < /proc/sys/kernel/random/uuid > "$root/etc/machine-id"

    cd "$root"
    pivot_root . .
    umount -l .
    [ -e /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
    # The lab key for every login user (and for root, whom sshd refuses anyway), owned by the
    # user as sshd's StrictModes demands; users and homes come from the host's own passwd.
    for user in $LAB_KEY_USERS; do
        home=$(getent passwd "$user" | cut -d: -f6)
        install -d -m 700 -o "$user" -g "$user" "$home/.ssh"
        printf '%s\n' "$keys" > "$home/.ssh/authorized_keys"
        chown "$user:$user" "$home/.ssh/authorized_keys"
        chmod 600 "$home/.ssh/authorized_keys"
    done
    exec /usr/bin/env -i container=lab /lib/systemd/systemd
    ;;
*)
    echo "usage: boot.sh outer|inner (started by lab/host.py)" >&2
    exit 2
    ;;
esac
