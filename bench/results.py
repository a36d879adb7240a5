"""What a bench run records: one `Measurement` per (what, hosts, package set, stack or by hand),
the machine it ran on, saved as JSON under `bench/results/` (git-ignored) after every scenario,
so an interrupted run keeps what it measured."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS_DIR = Path(__file__).with_name("results")
LATEST = RESULTS_DIR / "latest.json"

STACK, BASELINE = "stack", "by hand"


@dataclass
class Measurement:
    what: str
    hosts: int
    package_set: str
    tool: str
    """`stack` or `by hand`."""
    samples: list[float] = field(default_factory=list)
    """Seconds of each run; empty when skipped (`note` says why)."""
    registry_bytes: int | None = None
    pushed_bytes_per_node: float | None = None
    weights_mb_per_s_per_node: float | None = None
    note: str = ""
    details: dict = field(default_factory=dict)
    """Everything else worth keeping: phases, per-node bytes, resource changes of a no-op."""

    @property
    def seconds(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def key(self) -> tuple[str, int, str]:
        return self.what, self.hosts, self.package_set


def skipped(what: str, hosts: int, package_set: str, tool: str, reason: str) -> Measurement:
    return Measurement(what, hosts, package_set, tool, note=f"skipped: {reason}")


def machine() -> dict:
    memory_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
        platform.machine(),
    )
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(memory_kib / (1 << 20), 1),
        "cpu": model,
        "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


@dataclass
class BenchRun:
    mode: str
    runs: int
    machine: dict = field(default_factory=machine)
    measurements: list[Measurement] = field(default_factory=list)

    def add(self, measurements: list[Measurement]) -> None:
        self.measurements.extend(measurements)

    def to_json(self) -> dict:
        return {
            "mode": self.mode,
            "runs": self.runs,
            "machine": self.machine,
            "measurements": [{**asdict(m), "seconds": m.seconds} for m in self.measurements],
        }

    @classmethod
    def from_json(cls, document: dict) -> BenchRun:
        fields = set(Measurement.__dataclass_fields__)
        measurements = [Measurement(**{k: v for k, v in m.items() if k in fields}) for m in document["measurements"]]
        return cls(document["mode"], document["runs"], document["machine"], measurements)

    def save(self, path: Path) -> None:
        """Writes `path` and `latest.json` (what the README table is rendered from)."""
        text = json.dumps(self.to_json(), indent=2) + "\n"
        for target in {path, LATEST}:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)


def load(path: Path) -> BenchRun:
    return BenchRun.from_json(json.loads(path.read_text()))
