"""The node flavors (one lock each) and the interpreter every lock targets.

The controller resolves and downloads for the nodes' Python, not its own: the stack's CPython
3.11.2 (`artifacts.python_build`, the same on every node whatever its OS), so every lock and
wheelhouse is built for exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from artifacts.paths import REPO_ROOT

NODES_DIR = Path(__file__).resolve().parent
PLUGINS_DIR = REPO_ROOT / "plugins"

NODE_PYTHON_VERSION = "3.11.2"
NODE_PYTHON_ABI = "cp311"
NODE_ARCH = "x86_64"
NODE_GLIBC_MINOR = 36


@dataclass(frozen=True)
class Flavor:
    """One kind of node: its lock inputs live in `artifacts/packages/<name>/`.

    `plugin` is the source folder of our own package that goes into the wheelhouse beside the
    locked third-party wheels (see `artifacts.packages.wheelhouse` for why it is not in the lock). `cuda`
    marks a flavor whose torch runs on an NVIDIA driver, recorded in `cuda.json`.
    """

    name: str
    plugin: Path | None = None
    cuda: bool = False

    @property
    def directory(self) -> Path:
        return NODES_DIR / self.name

    @property
    def requirements_in(self) -> Path:
        return self.directory / "requirements.in"

    @property
    def lock_file(self) -> Path:
        return self.directory / "requirements.lock"

    @property
    def cuda_manifest(self) -> Path:
        return self.directory / "cuda.json"

    @property
    def overrides(self) -> Path | None:
        """Pins that replace a dependency's own pin (uv `--overrides`), if this flavor has any."""
        return self._optional("overrides.txt")

    @property
    def excludes(self) -> Path | None:
        """Packages dropped from the resolution (uv `--excludes`), if this flavor has any."""
        return self._optional("excludes.txt")

    def _optional(self, filename: str) -> Path | None:
        path = self.directory / filename
        return path if path.is_file() else None


FLAVORS: dict[str, Flavor] = {
    "cpu": Flavor("cpu", plugin=PLUGINS_DIR / "vllm-ray-cpu"),
    "nvidia": Flavor("nvidia", cuda=True),
}


def get_flavor(name: str) -> Flavor:
    try:
        return FLAVORS[name]
    except KeyError:
        raise ValueError(f"unknown node flavor {name!r}; known: {', '.join(FLAVORS)}") from None
