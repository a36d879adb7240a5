"""A wheelhouse of two tiny wheels, standing in for a node flavor's multi-gigabyte one so the lab
tests exercise push, offline hash-checked install and drift repair in seconds."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from components.wheels import WheelhouseFiles
from deploys import manifest as manifests
from nodes.wheelhouse import LOCK_NAME, pip_command

REPO_ROOT = Path(__file__).resolve().parents[2]
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
    manifest = manifests.build_manifest(path)
    return WheelhouseFiles(
        path=str(path),
        key=path.name,
        lock_file=LOCK_NAME,
        plugin_wheels=(),
        packages=tuple(sorted(pin.split("==")[0] for pin in pins)),
        manifest=manifests.render(manifest),
        manifest_digest=manifests.manifest_digest(manifest),
        total_bytes=sum((path / name).stat().st_size for name in manifest),
    )
