"""Boots, kills and inspects one lab host.

A running host is one process tree: a launcher (`unshare`, in the machine's pid namespace)
whose only child is the host's init (systemd, PID 1 inside the host). The init's pid and
start time are recorded in `.lab/<host>/init.json`; killing that process makes the kernel kill
every process of the host and drop its mounts. The host's disk is its overlay upper dir,
kept until `down`.
"""

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from lab import cgroups, mounts, processes, rootfs, ssh
from lab.commands import tail
from lab.errors import LabError
from lab.layout import Host
from lab.paths import SSH_KEY, host_dir
from lab.processes import ProcessRecord

BOOT_SCRIPT = Path(__file__).with_name("boot.sh")
_START_TIMEOUT = 10.0
_KILL_TIMEOUT = 10.0
T = TypeVar("T")


@dataclass(frozen=True)
class HostFiles:
    """A host's runtime files under `.lab/<host>/`."""

    dir: Path

    @property
    def upper(self) -> Path:
        return self.dir / "upper"

    @property
    def work(self) -> Path:
        return self.dir / "work"

    @property
    def root(self) -> Path:
        """Mount point of the overlay, mounted only inside the host's own mount namespace."""
        return self.dir / "root"

    @property
    def console_log(self) -> Path:
        return self.dir / "console.log"

    @property
    def launcher_pid(self) -> Path:
        return self.dir / "launcher.pid"

    @property
    def init_record(self) -> Path:
        return self.dir / "init.json"


def files(name: str) -> HostFiles:
    return HostFiles(host_dir(name))


def init_process(name: str) -> ProcessRecord | None:
    return ProcessRecord.load(files(name).init_record)


def running(name: str) -> bool:
    init = init_process(name)
    return init is not None and init.alive()


def boot(host: Host, base: Path, shm_size: str, hosts_file: Path) -> None:
    """Start the host's launcher detached from the caller and record its init."""
    paths = files(host.name)
    overlay_dirs = (base, paths.upper, paths.work)
    if any(separator in str(path) for path in overlay_dirs for separator in ",:"):
        raise LabError(f"overlayfs cannot take paths with ',' or ':' ({', '.join(map(str, overlay_dirs))}): "
                       "move the repository to a path without them")
    for directory in (paths.upper, paths.work, paths.root):
        directory.mkdir(parents=True, exist_ok=True)
    kill(host.name)  # processes of an earlier, interrupted boot would hold the upper dir
    paths.launcher_pid.unlink(missing_ok=True)
    environment = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LAB_CGROUP": str(cgroups.create(host.name)),
        "LAB_LAUNCHER_PIDFILE": str(paths.launcher_pid),
        "LAB_NETNS": host.netns,
        "LAB_HOSTNAME": host.name,
        "LAB_LOWER": str(base),
        "LAB_UPPER": str(paths.upper),
        "LAB_WORK": str(paths.work),
        "LAB_ROOT": str(paths.root),
        "LAB_SHM_SIZE": shm_size,
        "LAB_HOSTS_FILE": str(hosts_file),
        "LAB_AUTHORIZED_KEYS": str(SSH_KEY.with_suffix(".pub")),
        "LAB_KEY_USERS": " ".join(("root", *rootfs.USERS)),  # constants of rootfs: plain login names
    }
    with open(paths.console_log, "ab") as console:
        console.write(f"--- boot {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
        console.flush()
        # setsid --fork: the launcher outlives this process and is nobody's child here.
        forked = subprocess.run(["setsid", "--fork", "/bin/sh", str(BOOT_SCRIPT), "outer"], env=environment,
                                stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT)
    if forked.returncode != 0:
        raise LabError(f"{host.name}: could not start its launcher: {_console_tail(host.name)}")
    launcher = _wait_for(host, "its launcher to start", lambda: _read_pid(paths.launcher_pid))
    init = _wait_for(host, "its init to start", lambda: _only_child(host, launcher))
    init.save(paths.init_record)


def wait_ready(host: Host, timeout: float) -> None:
    """Wait until sshd answers and the lab key logs in; fail fast if the host dies meanwhile."""
    deadline = time.monotonic() + timeout
    while not ssh.sshd_answers(host):
        if not running(host.name):
            raise LabError(f"{host.name} died while booting: {_console_tail(host.name)}")
        if time.monotonic() > deadline:
            raise LabError(f"{host.name} ({host.address}): sshd did not answer within {timeout:.0f} s; "
                           f"see {files(host.name).console_log}")
        time.sleep(0.1)
    ssh.check_login(host)


def kill(name: str) -> None:
    """Kill the host's init (and so everything on it); wait until its cgroup is empty."""
    cgroup = cgroups.host_cgroup(name)
    init = init_process(name)
    if init is not None and init.alive():
        init.kill()
        if cgroups.wait_empty(cgroup, _KILL_TIMEOUT):
            return
    cgroups.kill_all(cgroup)  # an interrupted boot may have left processes with no recorded pid
    if not cgroups.wait_empty(cgroup, _KILL_TIMEOUT):
        raise LabError(f"{name}: processes {cgroups.pids(cgroup)} in {cgroup} survived SIGKILL; "
                       "check them with `ps -o pid,stat,cmd -p <pid>` and run `python -m lab down` again")


def remove(name: str) -> None:
    """Delete the host's cgroup and its files, disk included. The host must be killed first."""
    cgroups.remove(cgroups.host_cgroup(name))
    paths = files(name)
    mounts.unmount_under(paths.dir)
    if paths.dir.exists():
        shutil.rmtree(paths.dir)


def memory_kib(name: str) -> tuple[int, int]:
    """(PSS, RSS) summed over every process of the host, in KiB."""
    totals = [processes.memory_kib(pid) for pid in cgroups.pids(cgroups.host_cgroup(name))]
    return sum(pss for pss, _ in totals), sum(rss for _, rss in totals)


def _wait_for(host: Host, what: str, probe: Callable[[], T | None]) -> T:
    deadline = time.monotonic() + _START_TIMEOUT
    while (found := probe()) is None:
        if time.monotonic() > deadline:
            raise LabError(f"{host.name}: gave up waiting for {what}: {_console_tail(host.name)}")
        time.sleep(0.02)
    return found


def _read_pid(path: Path) -> ProcessRecord | None:
    try:
        return ProcessRecord.of(int(path.read_text()))
    except (FileNotFoundError, ValueError):
        return None


def _only_child(host: Host, launcher: ProcessRecord) -> ProcessRecord | None:
    """The launcher's forked child, which is PID 1 of the host."""
    if not launcher.alive():
        raise LabError(f"{host.name} failed to boot: {_console_tail(host.name)}")
    found = processes.children(launcher.pid)
    return ProcessRecord.of(found[0]) if found else None


def _console_tail(name: str) -> str:
    """Last lines of the host's console, on one line, for error messages."""
    try:
        text = files(name).console_log.read_text(errors="replace")
    except FileNotFoundError:
        return "no console log"
    return f"{' | '.join(tail(text, 5).splitlines())} (full log: {files(name).console_log})"
