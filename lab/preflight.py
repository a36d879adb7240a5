"""Checks that this machine can run the lab, each failing with what is missing and how to fix it."""

import os
import shutil
from pathlib import Path

from lab import cgroups
from lab.commands import succeeds
from lab.errors import LabError

_NAMESPACES = ("net", "mnt", "pid", "uts", "ipc", "cgroup")
_TOOLS = {"ip": "iproute2", "unshare": "util-linux", "setsid": "util-linux", "mount": "mount",
          "umount": "mount", "sysctl": "procps", "ssh": "openssh-client", "ssh-keygen": "openssh-client"}


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it creates namespaces, mounts and interfaces): "
                       "run it as root, e.g. `sudo .venv/bin/python -m lab ...`")


def require_machine_support() -> None:
    """Namespaces, overlayfs, cgroup2 and the command-line tools the lab drives."""
    for kind in _NAMESPACES:
        if not Path("/proc/self/ns", kind).exists():
            raise LabError(f"this kernel has no {kind} namespace support (/proc/self/ns/{kind} is missing): "
                           "the lab needs a kernel with namespaces enabled")
    if "overlay" not in Path("/proc/filesystems").read_text() and not succeeds(["modprobe", "overlay"]):
        raise LabError("this kernel has no overlay filesystem: load it with `modprobe overlay`")
    cgroups.cgroup2_root()
    missing = sorted({package for tool, package in _TOOLS.items() if not shutil.which(tool)})
    if missing:
        raise LabError(f"missing commands: run `apt-get install -y {' '.join(missing)}`")
