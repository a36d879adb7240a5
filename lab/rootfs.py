"""Builds the Debian root filesystems lab hosts boot from, once per suite and recipe.

A base is the read-only lower layer of each host's overlay. It lives under
`.cache/lab/base-<suite>-<key>/`, where the key hashes this module (package lists, users and
build recipe), the suite and the mirror, so any change to either builds a new base. A build
happens in a temporary directory that is renamed into place only when complete: an
interrupted build never leaves a directory that looks like a valid base.
"""

import fcntl
import hashlib
import re
import shutil
import subprocess
import time
from pathlib import Path

from lab import mounts
from lab.commands import tail
from lab.errors import LabError
from lab.layout import RELEASES
from lab.paths import LAB_CACHE_DIR

# What a host needs to be managed over SSH by pyinfra as a sudo user and to run Ray + vLLM's
# CPU build: python3-dev and g++ let torch's inductor compile kernels; libtcmalloc and libnuma
# are what vLLM's CPU backend loads; curl runs health checks from inside a host.
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "sudo", "iproute2", "procps",
    "ca-certificates", "curl", "rsync", "tar", "gzip",
    "python3", "python3-venv", "python3-pip", "python3-dev", "g++",
    "libnuma1",
)
# Where a suite names a package differently: trixie's 64-bit time_t transition renamed the
# libraries whose ABI it changed (libtcmalloc-minimal4 -> libtcmalloc-minimal4t64).
SUITE_PACKAGES = {
    "bookworm": ("libtcmalloc-minimal4",),
    "trixie": ("libtcmalloc-minimal4t64",),
}
LOGIN_USER = "rvs"
"""Who the lab (and the stack's inventory) logs in as: password-less sudo, the lab key. Root cannot log in."""
NO_SUDO_USER = "rvs-nosudo"
"""Logs in with the lab key but has no sudo rights: what tests use to see a refused sudo."""
PASSWORD_SUDO_USER = "rvs-password"
"""Logs in with the lab key; sudo asks it for `SUDO_PASSWORD`: what tests use for the stack's sudo password."""
SUDO_PASSWORD = "lab-sudo-password-7f3a"
"""A fixture of the lab's throwaway hosts, not a secret; tests check it never reaches a command line."""
USERS = (LOGIN_USER, NO_SUDO_USER, PASSWORD_SUDO_USER)
SUDOERS_FILE = f"etc/sudoers.d/{LOGIN_USER}"
SUDOERS = f"""\
# Lab host: the lab's login user runs anything as root without a password, as on a cloud image.
{LOGIN_USER} ALL=(ALL:ALL) NOPASSWD: ALL
# The stack's other supported setup: sudo with the user's password.
{PASSWORD_SUDO_USER} ALL=(ALL:ALL) ALL
"""
SSHD_CONFIG = """\
# Lab host: root never logs in (even though the lab key is in its authorized_keys, so that a
# refused root login proves this line, not a missing key); users log in with the lab key only.
# No reverse DNS (there is no resolver).
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
HostKey /etc/ssh/ssh_host_ed25519_key
"""
JOURNALD_CONFIG = """\
# Lab host: journal in /run only, kept small (many hosts share one machine's memory).
[Journal]
Storage=volatile
RuntimeMaxUse=16M
"""
# Timers and one-shot jobs that would reach for a network the hosts do not have or touch disks
# they do not own. systemd-modules-load: the kernel is the machine's, and hosts have no
# /lib/modules of it; systemd 257 (trixie) runs the unit in the lab's namespaces (its conditions
# hold: CAP_SYS_MODULE, a non-empty /etc/modules-load.d), libkmod fails ("Operation not
# supported") and the host boots "degraded". Masked in every suite: no host may load modules.
MASKED_UNITS = (
    "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer",
    "e2scrub_all.timer", "e2scrub_reap.service", "fstrim.timer",
    "systemd-modules-load.service",
)
_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))


def debian_mirror() -> str:
    """The Debian mirror apt on this machine already uses: the only one the lab may use.

    Any source line for a suite the lab builds will do (a bookworm machine builds trixie bases
    from its bookworm mirror: one Debian mirror serves every suite).
    """
    files = []
    for source in _SOURCES:
        files += sorted(source.glob("*")) if source.is_dir() else [source]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text()
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.MULTILINE))
                if set(RELEASES) & set(fields.get("Suites", "").split()) and fields.get("URIs"):
                    return fields["URIs"].split()[0]
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()
                if len(words) >= 3 and words[0] == "deb" and words[2] in RELEASES:
                    return words[1]
    raise LabError(f"no apt source for Debian {' or '.join(RELEASES)} in /etc/apt/sources.list*: "
                   "add one (the bases are built from its mirror)")


def version_key(mirror: str, suite: str, recipe: bytes | None = None) -> str:
    """Changes whenever the recipe (this module's source: packages, users, steps), the suite or the mirror changes."""
    digest = hashlib.sha256(Path(__file__).read_bytes() if recipe is None else recipe)
    digest.update(f"{suite}\n{mirror}".encode())
    return digest.hexdigest()[:12]


def ensure_base(suite: str, log=print) -> Path:
    """Path of the base root filesystem of `suite` for the current recipe, building it if absent."""
    mirror = debian_mirror()
    key = version_key(mirror, suite)
    final = LAB_CACHE_DIR / f"base-{suite}-{key}"
    if final.is_dir():
        return final
    LAB_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(LAB_CACHE_DIR / f"build-{suite}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent `up` waits for this build instead of racing it
        if not final.is_dir():
            _build(mirror, suite, key, LAB_CACHE_DIR, log)
    return final


def _build(mirror: str, suite: str, key: str, cache_dir: Path, log) -> None:
    """Build `<cache_dir>/base-<suite>-<key>`, then drop the bases and logs of the suite's other keys."""
    name = f"{suite}-{key}"
    final = cache_dir / f"base-{name}"
    building = cache_dir / f"base-{name}.building"
    if building.exists():  # left by an interrupted build; we hold the build lock
        _remove_tree(building)
    log_file = cache_dir / f"build-{name}.log"
    started = time.monotonic()
    log(f"building base root filesystem {final.name} from {mirror} (a minute or two, once) ...")
    with open(log_file, "w") as out:
        _step("debootstrap", _debootstrap_argv(mirror, suite, building), out, log_file, building)
        try:
            _configure(building)
        except OSError as error:
            raise LabError(f"base build failed at step 'configure': {error}") from error
        for user in USERS:
            _step(f"add user {user}", ["chroot", str(building), "useradd", "--create-home", "--shell", "/bin/bash",
                                       "--user-group", user], out, log_file, building)
        _set_password(building, PASSWORD_SUDO_USER, SUDO_PASSWORD, out, log_file)
        _step("check sudoers", ["chroot", str(building), "visudo", "--check", "--strict"], out, log_file, building)
        _step("apt-get clean", ["chroot", str(building), "apt-get", "clean"], out, log_file, building)
    _trim(building)
    (building / "etc" / "lab-base").write_text(name + "\n")
    building.rename(final)
    log(f"base {suite} built in {time.monotonic() - started:.0f} s: {final}")
    _remove_other_builds(cache_dir, suite, key)


def _remove_other_builds(cache_dir: Path, suite: str, key: str) -> None:
    """The suite's bases and logs of older recipes: no host uses them (a running lab never triggers a build)."""
    keep = f"{suite}-{key}"
    for stale in cache_dir.glob(f"base-{suite}-*"):
        if stale.name != f"base-{keep}" and stale.is_dir():
            _remove_tree(stale)
    for log_file in cache_dir.glob(f"build-{suite}-*.log"):
        if log_file.name != f"build-{keep}.log":
            log_file.unlink()


def _remove_tree(root: Path) -> None:
    """rmtree, after unmounting what a killed debootstrap may have left mounted inside (/proc, /sys)."""
    mounts.unmount_under(root)
    shutil.rmtree(root)


def _debootstrap_argv(mirror: str, suite: str, target: Path) -> list[str]:
    return ["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES + SUITE_PACKAGES[suite]),
            suite, str(target), mirror]


def _set_password(root: Path, user: str, password: str, out, log_file: Path) -> None:
    """chpasswd reads `user:password` on stdin, so the password is in no argv and no log."""
    out.write(f"### set the password of {user}\n")
    out.flush()
    done = subprocess.run(["chroot", str(root), "chpasswd"], input=f"{user}:{password}\n", text=True,
                          stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    if done.returncode != 0:
        raise LabError(f"base build failed at step 'set the password of {user}' (exit {done.returncode}); log {log_file}")


def _step(name: str, argv: list[str], out, log_file: Path, target: Path) -> None:
    """Run one build step with its output in the build log; on failure show the step and its output."""
    out.write(f"### {name}: {' '.join(argv)}\n")
    out.flush()
    code = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    if code != 0:
        details = log_file.read_text()
        inner_log = target / "debootstrap" / "debootstrap.log"
        if inner_log.is_file():
            details += "\n" + inner_log.read_text()
        raise LabError(f"base build failed at step '{name}' (exit {code}); full log {log_file}; "
                       f"last lines: {' | '.join(tail(details, 6).splitlines())}")


def _configure(root: Path) -> None:
    """Make the fresh tree a host template: no per-host identity, sshd for the lab key, sudo, quiet units."""
    (root / "etc/ssh/sshd_config.d/lab.conf").write_text(SSHD_CONFIG)
    sudoers = root / SUDOERS_FILE
    sudoers.write_text(SUDOERS)
    sudoers.chmod(0o440)  # sudo ignores a drop-in that is writable by anyone but root
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()  # each host generates its own on first boot
    journald = root / "etc/systemd/journald.conf.d"
    journald.mkdir(parents=True, exist_ok=True)
    (journald / "lab.conf").write_text(JOURNALD_CONFIG)
    (root / "etc/machine-id").write_text("")  # each host writes its own on first boot
    dbus_machine_id = root / "var/lib/dbus/machine-id"  # made by dbus's postinst: must follow /etc
    dbus_machine_id.unlink(missing_ok=True)
    dbus_machine_id.symlink_to("/etc/machine-id")
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/resolv.conf").write_text("")  # hosts have no resolver to reach
    (root / "etc/hostname").unlink(missing_ok=True)
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")


def _trim(root: Path) -> None:
    """Drop package indexes and caches: hosts cannot reach the mirror, packages come from the controller."""
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/log/*.log"):
        for path in root.glob(pattern):
            if path.is_file():
                path.unlink()
