"""A wheelhouse of two tiny wheels, standing in for a node flavor's multi-gigabyte one so the lab
tests exercise push, offline hash-checked install and drift repair in seconds."""

from __future__ import annotations

import hashlib
import subprocess

from artifacts import manifest as manifests
from artifacts.packages.wheelhouse import LOCK_NAME, pip_command
from artifacts.paths import REPO_ROOT
from artifacts.wheels import WheelhouseFiles, describe_wheelhouse

PINS = ("six==1.17.0", "idna==3.10")
CACHE = REPO_ROOT / ".cache" / "test-wheelhouse"


def small_wheelhouse(pins: tuple[str, ...] = PINS) -> WheelhouseFiles:
    path = CACHE / f"small-{hashlib.sha256(' '.join(pins).encode()).hexdigest()[:16]}"
    if not (path / LOCK_NAME).is_file():
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run([*pip_command(), "download", "--no-deps", "--only-binary=:all:", "--dest", str(path), *pins],
                       check=True, capture_output=True)  # fmt: skip
        lines = []
        for pin in pins:
            name, version = pin.split("==")
            (wheel,) = path.glob(f"{name}-{version}-*.whl")
            lines.append(f"{pin} \\\n    --hash=sha256:{manifests.file_sha256(wheel)}\n")
        (path / LOCK_NAME).write_text("".join(lines))
    return describe_wheelhouse(path)
