"""Which CUDA a locked torch was built for, and the oldest NVIDIA driver that runs it.

PyPI's torch wheels carry their own CUDA runtime (the nvidia-cuda-runtime wheel), so the one
thing a GPU host must bring is a driver new enough for that runtime. Provisioning compares the
host driver with `artifacts/packages/<flavor>/cuda.json`, which `python -m artifacts.packages.lock` writes from the lock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from artifacts.packages.lockfile import LockedPackage

# Linux x86_64 driver that shipped with each toolkit's GA release ("CUDA Toolkit and
# Corresponding Driver Versions" in NVIDIA's CUDA Toolkit release notes). Within a major version
# older drivers may work through minor-version compatibility (>= 525 for 12.x, >= 580 for 13.x)
# but without PTX JIT; the GA driver is the floor that runs everything the wheels ship.
MIN_DRIVER_BY_CUDA = {
    "12.6": "560.28.03",
    "12.8": "570.26",
    "12.9": "575.51.03",
    "13.0": "580.65.06",
}

_CUDA_RUNTIME = re.compile(r"^nvidia-cuda-runtime(-cu\d+)?$")


def cuda_manifest(packages: Iterable[LockedPackage]) -> dict[str, str]:
    """{"torch", "cuda", "cuda_runtime", "min_driver"} for the torch in `packages`."""
    by_name = {p.name: p for p in packages}
    if "torch" not in by_name:
        raise ValueError("the lock has no torch")
    runtimes = [p for name, p in by_name.items() if _CUDA_RUNTIME.match(name)]
    if len(runtimes) != 1:
        raise ValueError(f"expected one nvidia-cuda-runtime wheel in the lock, got {runtimes}")
    runtime = runtimes[0].version
    cuda = ".".join(runtime.split(".")[:2])
    if cuda not in MIN_DRIVER_BY_CUDA:
        raise ValueError(f"no minimum driver known for CUDA {cuda}: add it to MIN_DRIVER_BY_CUDA")
    return {
        "torch": by_name["torch"].version,
        "cuda": cuda,
        "cuda_runtime": runtime,
        "min_driver": MIN_DRIVER_BY_CUDA[cuda],
    }


def write_manifest(path: Path, manifest: dict[str, str]) -> None:
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
