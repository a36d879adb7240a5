"""Checks that this machine can run the lab, each failing with what is missing and how to fix it."""

import os
import subprocess
from pathlib import Path

from lab import cgroups
from lab.commands import succeeds
from lab.errors import LabError
from lab.paths import REPO_ROOT

_NAMESPACES = ("net", "mnt", "pid", "uts", "ipc", "cgroup")
SYSTEM_PACKAGES = REPO_ROOT / "tools" / "system-packages.sh"
"""The one check of the controller's system packages (tools/system-packages.tsv), shared with `make setup`."""


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (it creates namespaces, mounts and interfaces): "
                       "run it as root, e.g. `sudo .venv/bin/python -m lab ...`")


def require_machine_support() -> None:
    """Namespaces, overlayfs, cgroup2 and the controller's system packages."""
    for kind in _NAMESPACES:
        if not Path("/proc/self/ns", kind).exists():
            raise LabError(f"this kernel has no {kind} namespace support (/proc/self/ns/{kind} is missing): "
                           "the lab needs a kernel with namespaces enabled")
    if "overlay" not in Path("/proc/filesystems").read_text() and not succeeds(["modprobe", "overlay"]):
        raise LabError("this kernel has no overlay filesystem: load it with `modprobe overlay`")
    cgroups.cgroup2_root()
    check = subprocess.run([SYSTEM_PACKAGES, "check"], capture_output=True, text=True)
    if check.returncode != 0:
        raise LabError(check.stderr.strip())
