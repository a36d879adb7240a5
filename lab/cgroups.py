"""The cgroup2 subtree that holds each host's processes.

Every process of a host lives in `<cgroup2>/rvs-lab/<host>/...` (systemd inside the host sees
that directory as its cgroup root). That is how the lab knows all of a host's processes, and
that the ones it removes are its own.
"""

import time
from pathlib import Path

from lab.errors import LabError

LAB_CGROUP = "rvs-lab"


def cgroup2_root() -> Path:
    """Where the cgroup2 hierarchy is mounted: /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid setups."""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, mount_point, fstype, *_ = line.split()
        if fstype == "cgroup2":
            return Path(mount_point)
    raise LabError("no cgroup2 hierarchy is mounted: mount one (mount -t cgroup2 none /sys/fs/cgroup/unified)")


def lab_cgroup() -> Path:
    return cgroup2_root() / LAB_CGROUP


def host_cgroup(name: str) -> Path:
    return lab_cgroup() / name


def create(name: str) -> Path:
    path = host_cgroup(name)
    path.mkdir(parents=True, exist_ok=True)
    return path


def pids(path: Path) -> list[int]:
    """Every process in the cgroup and its descendants."""
    found = []
    for procs in sorted(path.rglob("cgroup.procs")) if path.is_dir() else []:
        try:
            found += [int(pid) for pid in procs.read_text().split()]
        except FileNotFoundError:  # a child cgroup removed while we read
            continue
    return found


def populated(path: Path) -> bool:
    try:
        return "populated 1" in (path / "cgroup.events").read_text()
    except FileNotFoundError:
        return False


def wait_empty(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while populated(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def kill_all(path: Path) -> None:
    """SIGKILL every process in the subtree (cgroup.kill): for processes whose pid was never recorded,
    such as those of an `up` interrupted between starting a host and recording its pids."""
    if populated(path):
        (path / "cgroup.kill").write_text("1")


def remove(path: Path) -> None:
    """Remove the cgroup and the sub-cgroups systemd made inside it, deepest first."""
    if not path.is_dir():
        return
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        child.rmdir()
    path.rmdir()
