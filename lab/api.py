"""The lab's operations: what the CLI, the tests and the demo call.

Every operation that changes the lab holds the lab lock, so concurrent callers queue up.
`down` finds what to remove by name as well as from the records, so it also cleans up after
a crash or an interrupted `up`.
"""

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lab import cgroups, host, inventory, mounts, network, preflight, rootfs, ssh, state
from lab.errors import LabError
from lab.layout import DEFAULT_RELEASES, DEFAULT_SHM_SIZE, DEFAULT_SUBNET, Host, LabSpec
from lab.paths import SSH_CONFIG, STATE_DIR

BOOT_TIMEOUT = 60.0
_HOSTS_FILE = STATE_DIR / "hosts"
_HOST_DIR_NAME = re.compile(r"^lab[0-9]+$")


@dataclass(frozen=True)
class HostStatus:
    name: str
    address: str
    state: str  # "up", "isolated" (running, link cut) or "down"
    os: str  # debian-12, debian-13
    pss_mib: float
    rss_mib: float


def up(hosts: int = 2, subnet: str = DEFAULT_SUBNET, shm_size: str = DEFAULT_SHM_SIZE,
       releases: tuple[str, ...] = DEFAULT_RELEASES, log=print) -> list[Host]:
    """Bring up `hosts` hosts (lab1..labN, Debian `releases` cycled over them); hosts already running
    are left as they are."""
    spec = LabSpec(host_count=hosts, subnet=subnet, shm_size=shm_size, releases=releases)
    preflight.require_root()
    preflight.require_machine_support()
    with state.locked():
        network.check_subnet_free(spec)
        recorded = state.load()
        if recorded is not None and recorded[0] != spec:
            raise LabError(f"the lab is already up with {recorded[0]}: run `python -m lab down` first to change it")
        ssh.ensure_key()
        # A running lab keeps the bases its hosts' disks were made on, even if the recipe changed since.
        kept = recorded[1] if recorded is not None else {}
        bases = {release: kept[release] if release in kept and kept[release].is_dir() else rootfs.ensure_base(release, log)
                 for release in dict.fromkeys(h.release for h in spec.hosts)}
        state.save(spec, bases)
        network.ensure_bridge(spec)
        _write_hosts_file(spec)
        booted = []
        for lab_host in spec.hosts:
            network.ensure_host_link(lab_host, spec)
            if not host.running(lab_host.name):
                host.boot(lab_host, bases[lab_host.release], spec.shm_size, _HOSTS_FILE)
                booted.append(lab_host)
        _wait_ready(booted)
        ssh.write_config(spec.hosts)
        inventory.write(spec.hosts)
    return spec.hosts


def down() -> None:
    """Remove every process, mount, namespace, interface, cgroup and host disk the lab made."""
    preflight.require_root()
    with state.locked():
        names = _known_host_names()
        for name in names:
            host.kill(name)
        network.remove_all()
        for name in names:
            host.remove(name)
        cgroups.remove(cgroups.lab_cgroup())
        mounts.unmount_under(STATE_DIR)
        for path in (_HOSTS_FILE, SSH_CONFIG):
            path.unlink(missing_ok=True)
        state.forget()


def status() -> list[HostStatus]:
    """Each recorded host with its address and state; empty when the lab is down."""
    recorded = state.load()
    if recorded is None:
        return []
    return [_host_status(lab_host) for lab_host in recorded[0].hosts]


def hosts() -> list[Host]:
    """The hosts of the running lab."""
    return state.require()[0].hosts


def crash(name: str) -> None:
    """Kill the host's init abruptly: everything on it dies, its disk stays."""
    preflight.require_root()
    lab_host = _recorded_host(name)
    with state.locked():
        if not host.running(lab_host.name):
            raise LabError(f"{name} is not running: nothing to crash (start it with `python -m lab start {name}`)")
        host.kill(lab_host.name)


def start(name: str) -> None:
    """Boot a stopped host again on its kept disk; a no-op if it is running."""
    preflight.require_root()
    lab_host = _recorded_host(name)
    spec, bases = state.require()
    with state.locked():
        if host.running(name):
            return
        network.ensure_host_link(lab_host, spec)
        host.boot(lab_host, bases[lab_host.release], spec.shm_size, _HOSTS_FILE)
        if network.connected(lab_host):  # an isolated host boots, but cannot be reached to check
            host.wait_ready(lab_host, BOOT_TIMEOUT)


def isolate(name: str) -> None:
    preflight.require_root()
    with state.locked():
        network.isolate(_recorded_host(name))


def reconnect(name: str) -> None:
    preflight.require_root()
    with state.locked():
        network.reconnect(_recorded_host(name))


def ssh_argv(name: str, *command: str) -> list[str]:
    """ssh command line running `command` as root on the named host (logged in as the lab's user, through sudo)."""
    return ssh.ssh_argv(_recorded_host(name), *command)


def login_argv(name: str, user: str, *command: str) -> list[str]:
    """ssh command line logging in to the named host as `user` with the lab key, running `command` as that user."""
    return ssh.login_argv(_recorded_host(name), user, *command)


def run_on(name: str, script: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a bash script as root on the named host; the caller checks the exit code."""
    return subprocess.run(ssh_argv(name, script), capture_output=True, text=True, timeout=timeout)


def memory_kib(name: str) -> tuple[int, int]:
    """(PSS, RSS) of the host's whole process tree, in KiB."""
    return host.memory_kib(_recorded_host(name).name)


def leftovers() -> list[str]:
    """What of the lab still exists on the machine; empty after a clean `down`."""
    found = [f"netns {name}" for name in network.lab_netns()]
    found += [f"interface {name}" for name in network.lab_links()]
    found += [f"mount {point}" for point in mounts.under(STATE_DIR)]
    lab_cgroup = cgroups.lab_cgroup()
    found += [f"process {pid}" for pid in cgroups.pids(lab_cgroup)]
    found += [f"cgroup {lab_cgroup}"] if lab_cgroup.exists() else []
    found += [f"host dir {STATE_DIR / name}" for name in _host_dir_names()]
    return found


def _recorded_host(name: str) -> Host:
    return state.require()[0].host(name)


def _wait_ready(booted: list[Host]) -> None:
    """Wait for all freshly booted hosts at once; report every host that failed."""
    if not booted:
        return
    with ThreadPoolExecutor(max_workers=len(booted)) as pool:
        futures = [pool.submit(host.wait_ready, lab_host, BOOT_TIMEOUT) for lab_host in booted]
    errors = [str(future.exception()) for future in futures if future.exception() is not None]
    if errors:
        raise LabError("; ".join(errors) + " (run `python -m lab down` to clean up)")


def _write_hosts_file(spec: LabSpec) -> None:
    """/etc/hosts of every host: each host resolves every other, and `controller`, with no DNS."""
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback",
             f"{spec.bridge_address} controller"]
    lines += [f"{lab_host.address} {lab_host.name}" for lab_host in spec.hosts]
    _HOSTS_FILE.write_text("\n".join(lines) + "\n")


def _host_status(lab_host: Host) -> HostStatus:
    if not host.running(lab_host.name):
        return HostStatus(lab_host.name, lab_host.address, "down", lab_host.os, 0.0, 0.0)
    pss_kib, rss_kib = host.memory_kib(lab_host.name)
    state_name = "up" if network.connected(lab_host) else "isolated"
    return HostStatus(lab_host.name, lab_host.address, state_name, lab_host.os, round(pss_kib / 1024, 1), round(rss_kib / 1024, 1))


def _host_dir_names() -> list[str]:
    if not STATE_DIR.is_dir():
        return []
    return sorted(path.name for path in STATE_DIR.iterdir() if path.is_dir() and _HOST_DIR_NAME.match(path.name))


def _known_host_names() -> list[str]:
    """Hosts from the record, from `.lab/labN/` dirs and from cgroups: whatever survived a crash."""
    names = set(_host_dir_names())
    try:
        recorded = state.load()
    except LabError:  # a corrupt record must not stop `down`: the dirs and cgroups name the hosts
        recorded = None
    if recorded is not None:
        names.update(lab_host.name for lab_host in recorded[0].hosts)
    lab_cgroup = cgroups.lab_cgroup()
    if lab_cgroup.is_dir():
        names.update(path.name for path in lab_cgroup.iterdir() if path.is_dir())
    return sorted(names)
