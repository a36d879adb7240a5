"""Process records that survive a controller restart and never match a recycled pid."""

import contextlib
import json
import os
import signal
from dataclasses import asdict, dataclass
from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may contain spaces)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rpartition(")")[2].split()


@dataclass(frozen=True)
class ProcessRecord:
    """A pid plus its start time: a pid alone may belong to another process after a crash."""

    pid: int
    start_ticks: int

    @classmethod
    def of(cls, pid: int) -> "ProcessRecord | None":
        fields = _stat_fields(pid)
        return cls(pid, int(fields[19])) if fields else None

    def alive(self) -> bool:
        fields = _stat_fields(self.pid)
        return bool(fields) and fields[0] != "Z" and int(fields[19]) == self.start_ticks

    def kill(self) -> None:
        """SIGKILL the recorded process if it is still the one we started."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):  # it died since the check
                os.kill(self.pid, signal.SIGKILL)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)) + "\n")

    @classmethod
    def load(cls, path: Path) -> "ProcessRecord | None":
        try:
            return cls(**json.loads(path.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None


def children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def memory_kib(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of one process in KiB; (0, 0) if it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0, 0
    fields = {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines()[1:] if line.endswith("kB")}
    return fields.get("Pss", 0), fields.get("Rss", 0)
