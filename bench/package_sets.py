"""What the bench installs and pushes besides the stack's own artifacts.

- The `ray` package set: `ray[default]` and its dependencies, cut out of the CPU flavor's
  wheelhouse (same wheels, same hashes, no download). The full CPU set makes a 6.5 GB venv plus
  a 3.1 GB wheelhouse copy per host; 4 and 8 such hosts do not fit on the lab machine's disk,
  so the provisioning points at those host counts use this set (the table says which set).
- Synthetic weights: random bytes in safetensors-sized files, big enough that pushing them
  measures throughput rather than connection set-up (the tiny model is 7 MB).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from artifacts.packages.flavors import get_flavor
from artifacts.packages.lockfile import normalize_name
from artifacts.packages.wheelhouse import LOCK_NAME, digest16, pip_command, wheelhouse_path
from artifacts.paths import REPO_ROOT

BENCH_CACHE = REPO_ROOT / ".cache" / "bench"
RAY_REQUIREMENT = "ray[default]==2.60.0"
WEIGHT_FILES = 4
_REQUIREMENT_START = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==")


def cpu_wheelhouse() -> Path:
    path = wheelhouse_path(get_flavor("cpu"))
    if not (path / LOCK_NAME).is_file():
        raise FileNotFoundError(f"{path} is missing: run `python -m artifacts.packages.wheelhouse --flavor cpu` first")
    return path


def ray_wheelhouse(source: Path | None = None) -> Path:
    """`.cache/bench/wheelhouse/ray-<hash>/`: the closure of `ray[default]` from the CPU wheelhouse,
    wheels hard-linked, with the matching part of its lock."""
    source = source or cpu_wheelhouse()
    wheels = _resolve_offline(source, RAY_REQUIREMENT)
    lock = lock_subset((source / LOCK_NAME).read_text(), {normalize_name(name) for name in wheels})
    path = BENCH_CACHE / "wheelhouse" / f"ray-{digest16(lock.encode())}"
    if not (path / LOCK_NAME).is_file():
        path.mkdir(parents=True, exist_ok=True)
        for wheel in wheels.values():
            if not (path / wheel).exists():
                os.link(source / wheel, path / wheel)
        (path / LOCK_NAME).write_text(lock)
    return path


def lock_subset(lock_text: str, names: set[str]) -> str:
    """The requirement blocks (pin, hashes, `# via` comments) of the normalized `names`."""
    kept, keep = [], False
    for line in lock_text.splitlines(keepends=True):
        start = _REQUIREMENT_START.match(line)
        if start:
            keep = normalize_name(start["name"]) in names
        elif not line.startswith((" ", "\t")):
            keep = False
        if keep:
            kept.append(line)
    return "".join(kept)


def synthetic_weights(total_bytes: int) -> Path:
    """`.cache/bench/weights-<MiB>m/`: WEIGHT_FILES files of random bytes summing to `total_bytes`."""
    path = BENCH_CACHE / f"weights-{total_bytes >> 20}m"
    size = total_bytes // WEIGHT_FILES
    names = [f"model-{index:05d}-of-{WEIGHT_FILES:05d}.safetensors" for index in range(1, WEIGHT_FILES + 1)]
    path.mkdir(parents=True, exist_ok=True)
    for name in names:
        target = path / name
        if not target.is_file() or target.stat().st_size != size:
            with target.open("wb") as stream:
                for _ in range(size >> 20):
                    stream.write(os.urandom(1 << 20))
    return path


def _resolve_offline(wheelhouse: Path, requirement: str) -> dict[str, str]:
    """{distribution name: wheel file name} pip installs for `requirement` from `wheelhouse` alone."""
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        subprocess.run(
            [*pip_command(), "install", "--dry-run", "--quiet", "--no-index", "--ignore-installed",
             "--find-links", str(wheelhouse), "--report", report.name, requirement],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        installs = json.loads(Path(report.name).read_text())["install"]
    return {item["metadata"]["name"]: Path(unquote(urlparse(item["download_info"]["url"]).path)).name for item in installs}
