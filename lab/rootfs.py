"""Builds the Debian root filesystem every lab host boots from, once per recipe.

The base is the read-only lower layer of each host's overlay. It lives under
`.cache/lab/base-<key>/`, where the key hashes this module (package list and build recipe)
and the mirror, so any change to either builds a new base. A build happens in a temporary
directory that is renamed into place only when complete: an interrupted build never leaves
a directory that looks like a valid base.
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
from lab.paths import LAB_CACHE_DIR

SUITE = "bookworm"
# What a host needs to be managed over SSH by pyinfra and to run Ray + vLLM's CPU build:
# python3-dev and g++ let torch's inductor compile kernels; libtcmalloc and libnuma are what
# vLLM's CPU backend loads; curl runs health checks from inside a host.
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "procps",
    "ca-certificates", "curl", "rsync", "tar", "gzip",
    "python3", "python3-venv", "python3-pip", "python3-dev", "g++",
    "libnuma1", "libtcmalloc-minimal4",
)
SSHD_CONFIG = """\
# Lab host: root logs in with the lab key only; no reverse DNS (there is no resolver).
PermitRootLogin prohibit-password
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
# they do not own.
MASKED_UNITS = (
    "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer",
    "e2scrub_all.timer", "e2scrub_reap.service", "fstrim.timer",
)
_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))


def debian_mirror() -> str:
    """The Debian mirror apt on this machine already uses for the suite: the only one the lab may use."""
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
                if SUITE in fields.get("Suites", "").split() and fields.get("URIs"):
                    return fields["URIs"].split()[0]
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()
                if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                    return words[1]
    raise LabError(f"no apt source for Debian {SUITE} in /etc/apt/sources.list*: add one (the base is built from it)")


def version_key(mirror: str, recipe: bytes | None = None) -> str:
    """Changes whenever the recipe (this module's source: package list and steps) or the mirror changes."""
    digest = hashlib.sha256(Path(__file__).read_bytes() if recipe is None else recipe)
    digest.update(mirror.encode())
    return digest.hexdigest()[:12]


def ensure_base(log=print) -> Path:
    """Path of the base root filesystem for the current recipe, building it if absent."""
    mirror = debian_mirror()
    key = version_key(mirror)
    final = LAB_CACHE_DIR / f"base-{key}"
    if final.is_dir():
        return final
    LAB_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(LAB_CACHE_DIR / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent `up` waits for this build instead of racing it
        if not final.is_dir():
            _build(mirror, key, LAB_CACHE_DIR, log)
    return final


def _build(mirror: str, key: str, cache_dir: Path, log) -> None:
    """Build `<cache_dir>/base-<key>`, then drop the bases and logs of other keys."""
    final = cache_dir / f"base-{key}"
    building = cache_dir / f"base-{key}.building"
    if building.exists():  # left by an interrupted build; we hold the build lock
        _remove_tree(building)
    log_file = cache_dir / f"build-{key}.log"
    started = time.monotonic()
    log(f"building base root filesystem {final.name} from {mirror} (a minute or two, once) ...")
    with open(log_file, "w") as out:
        _step("debootstrap", _debootstrap_argv(mirror, building), out, log_file, building)
        try:
            _configure(building)
        except OSError as error:
            raise LabError(f"base build failed at step 'configure': {error}") from error
        _step("apt-get clean", ["chroot", str(building), "apt-get", "clean"], out, log_file, building)
    _trim(building)
    (building / "etc" / "lab-base").write_text(key + "\n")
    building.rename(final)
    log(f"base built in {time.monotonic() - started:.0f} s: {final}")
    _remove_other_builds(cache_dir, key)


def _remove_other_builds(cache_dir: Path, key: str) -> None:
    """Bases and logs of older recipes: no host uses them (a running lab never triggers a build)."""
    for stale in cache_dir.glob("base-*"):
        if stale.name != f"base-{key}" and stale.is_dir():
            _remove_tree(stale)
    for log_file in cache_dir.glob("build-*.log"):
        if log_file.name != f"build-{key}.log":
            log_file.unlink()


def _remove_tree(root: Path) -> None:
    """rmtree, after unmounting what a killed debootstrap may have left mounted inside (/proc, /sys)."""
    mounts.unmount_under(root)
    shutil.rmtree(root)


def _debootstrap_argv(mirror: str, target: Path) -> list[str]:
    return ["debootstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES),
            SUITE, str(target), mirror]


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
    """Make the fresh tree a host template: no per-host identity, sshd for the lab key, quiet units."""
    (root / "etc/ssh/sshd_config.d/lab.conf").write_text(SSHD_CONFIG)
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
