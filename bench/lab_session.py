"""The lab for one measurement: wait until nobody else uses it, bring up fresh hosts, take them down.

The lab is shared with other engineers' test runs, so the bench never takes it over: it waits
until the lab is down and no pytest or pulumi process of someone else runs, and it holds the lab
only for one measurement (every measurement starts from freshly booted hosts, which is also what
"cold" means).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from lab import api
from lab.paths import INVENTORY_FILE, REPO_ROOT
from stack.config import HostConfig

BUSY_PATTERN = "pytest|pulumi"
POLL_SECONDS = 120


class LabUnavailable(RuntimeError):
    """The lab stayed busy until the deadline."""


def foreign_busy_processes() -> list[str]:
    """`pgrep -af` lines of pytest/pulumi processes that are not this bench's own children."""
    listing = subprocess.run(["pgrep", "-af", BUSY_PATTERN], capture_output=True, text=True).stdout
    ours = _descendants(os.getpid())
    return [line for line in listing.splitlines() if line and int(line.split()[0]) not in ours]


def lab_is_free() -> tuple[bool, str]:
    """(free?, why not)."""
    if api.status():
        return False, "the lab is up"
    busy = foreign_busy_processes()
    if busy:
        return False, f"{len(busy)} pytest/pulumi process(es) running, e.g. {busy[0][:100]}"
    return True, ""


def wait_for_free_lab(deadline: float | None, log=print) -> None:
    """Polls until the lab is free; raises LabUnavailable once `deadline` (epoch seconds) passed."""
    while True:
        free, why = lab_is_free()
        if free:
            return
        if deadline is not None and time.time() >= deadline:
            raise LabUnavailable(f"the lab stayed busy until the deadline ({why})")
        log(f"waiting for the lab: {why}")
        time.sleep(POLL_SECONDS)


@contextmanager
def fresh_lab(host_count: int, deadline: float | None, log=print) -> Iterator[list[HostConfig]]:
    """`host_count` freshly booted lab hosts as the stack's HostConfig (lab1 is the head);
    the lab is taken down afterwards, whatever happened. All Debian 12: the by-hand baselines use
    the OS's python3, which only there is the locks' 3.11 (the stack brings its own anywhere)."""
    wait_for_free_lab(deadline, log)
    try:
        api.up(hosts=host_count, releases=("bookworm",), log=log)
        yield inventory_hosts()
    finally:
        api.down()


def inventory_hosts() -> list[HostConfig]:
    """The hosts of `inventory/dev.yaml`, with the SSH key made absolute."""
    entries = yaml.safe_load(INVENTORY_FILE.read_text())["hosts"]
    return [
        HostConfig.model_validate({**entry, "ssh": {**entry["ssh"], "key_file": str(REPO_ROOT / entry["ssh"]["key_file"])}})
        for entry in entries
    ]


def free_disk_bytes(path: Path = REPO_ROOT) -> int:
    """Free space where the lab hosts' disks live (their overlay upper dirs are under `.lab/`)."""
    return shutil.disk_usage(path).free


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, pending = {pid}, [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found
