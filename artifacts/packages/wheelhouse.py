"""Downloads every wheel of a flavor's lock once, for the nodes' interpreter, into a folder that
provisioning copies to hosts without an index.

    python -m artifacts.packages.wheelhouse --flavor cpu

Layout under `.cache/wheelhouse/`:

    <flavor>-<first 16 hex of the lock's sha256>/
        requirements.lock          the lock the wheels were checked against
        *.whl                      one wheel per locked package (manylinux x86_64, cp311)
        plugins/<source digest>/   our plugin's wheel, built from `plugins/<name>/`

The third-party part is immutable for a given lock: it is downloaded into a temporary folder,
checked (one wheel per locked package, each sha256 among the lock's hashes) and renamed into
place, so a folder that exists is complete. Our plugin is not in the lock because its hash only
exists once it is built; it is built offline from the wheelhouse itself (its build backend,
setuptools, is a locked wheel), keyed by a digest of its source so that an edit gives a new
wheel, and installed with `--no-deps` (it imports vLLM and Ray but declares no dependencies).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from artifacts.manifest import file_sha256
from artifacts.packages.flavors import (
    FLAVORS,
    NODE_ARCH,
    NODE_GLIBC_MINOR,
    NODE_PYTHON_ABI,
    NODE_PYTHON_VERSION,
    REPO_ROOT,
    Flavor,
    get_flavor,
)
from artifacts.packages.lockfile import normalize_name, read_lock

CACHE_ROOT = REPO_ROOT / ".cache" / "wheelhouse"
PIP_VENV = REPO_ROOT / ".cache" / "pip-venv"
LOCK_NAME = "requirements.lock"
PLUGINS_SUBDIR = "plugins"

# Build outputs that must not change the plugin's source digest.
_NOT_SOURCE = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "dist", "*.egg-info")


@dataclass(frozen=True)
class Wheelhouse:
    path: Path
    total_bytes: int
    plugin_wheel: Path | None  # relative to `path`


def digest16(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def wheelhouse_path(flavor: Flavor, cache_root: Path = CACHE_ROOT) -> Path:
    return cache_root / f"{flavor.name}-{digest16(flavor.lock_file.read_bytes())}"


def build_wheelhouse(flavor: Flavor, cache_root: Path = CACHE_ROOT) -> Wheelhouse:
    """The flavor's wheelhouse, downloading and building only what is missing."""
    path = wheelhouse_path(flavor, cache_root)
    if not path.is_dir():
        _download_locked_wheels(flavor, path, cache_root)
    plugin_wheel = _build_plugin(flavor.plugin, path) if flavor.plugin else None
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return Wheelhouse(path, total, plugin_wheel.relative_to(path) if plugin_wheel else None)


def pip_download_command(pip: list[str], lock: Path, dest: Path) -> list[str]:
    """pip fetching exactly the locked wheels for the nodes' interpreter.

    pip 23 does not widen `--platform manylinux_2_36_x86_64` to older manylinux levels, so every
    level a glibc 2.36 host accepts is listed (plus the legacy aliases older wheels carry).
    """
    platforms = [f"manylinux_2_{minor}_{NODE_ARCH}" for minor in range(NODE_GLIBC_MINOR, 4, -1)]
    legacy_aliases = ("manylinux2014", "manylinux2010", "manylinux1")
    platforms += [f"{alias}_{NODE_ARCH}" for alias in legacy_aliases]
    command = [
        *pip, "download",
        "--requirement", str(lock),
        "--dest", str(dest),
        "--require-hashes", "--no-deps", "--only-binary=:all:", "--progress-bar=off",
        "--no-cache-dir",  # the wheelhouse is the cache; pip's would hold a second copy
        "--python-version", NODE_PYTHON_VERSION,
        "--implementation", "cp",
    ]  # fmt: skip
    for abi in (NODE_PYTHON_ABI, "abi3", "none"):
        command += ["--abi", abi]
    for platform in platforms:
        command += ["--platform", platform]
    return command


def check_wheels(lock: Path, folder: Path) -> None:
    """Raises unless `folder` holds exactly one wheel per locked package, with a locked hash."""
    expected = {(p.name, p.version): p.sha256 for p in read_lock(lock)}
    found: dict[tuple[str, str], Path] = {}
    for wheel in folder.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        key = (normalize_name(name), version)
        if key in found:
            raise RuntimeError(f"two wheels for {key}: {found[key].name}, {wheel.name}")
        if key not in expected:
            raise RuntimeError(f"{wheel.name} is not in {lock}")
        if file_sha256(wheel) not in expected[key]:
            raise RuntimeError(f"{wheel.name}: sha256 is not among the lock's hashes")
        found[key] = wheel
    missing = sorted(set(expected) - set(found))
    if missing:
        raise RuntimeError(f"no wheel for {missing}")


def _download_locked_wheels(flavor: Flavor, path: Path, cache_root: Path) -> None:
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=cache_root))
    try:
        shutil.copyfile(flavor.lock_file, staging / LOCK_NAME)
        subprocess.run(pip_download_command(pip_command(), staging / LOCK_NAME, staging), check=True)
        check_wheels(staging / LOCK_NAME, staging)
        _rename_into_place(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _build_plugin(source: Path, wheelhouse: Path) -> Path:
    """Our plugin's wheel under `plugins/<source digest>/`, built offline if missing."""
    with tempfile.TemporaryDirectory(prefix=".plugin-", dir=wheelhouse.parent) as scratch:
        # Build from a copy: setuptools writes build/ and *.egg-info next to its sources.
        tree = Path(scratch) / source.name
        shutil.copytree(source, tree, ignore=_NOT_SOURCE)
        target = wheelhouse / PLUGINS_SUBDIR / f"{source.name}-{_tree_digest(tree)}"
        if not target.is_dir():
            built = Path(scratch) / "wheel"
            subprocess.run(
                [*pip_command(), "wheel", "--no-deps", "--no-index", "--no-cache-dir",
                 "--find-links", str(wheelhouse), "--wheel-dir", str(built), str(tree)],
                check=True,
            )  # fmt: skip
            target.parent.mkdir(exist_ok=True)
            _rename_into_place(built, target)
    for stale in target.parent.glob(f"{source.name}-*"):
        if stale != target:
            shutil.rmtree(stale, ignore_errors=True)
    (wheel,) = target.glob("*.whl")
    return wheel


def _tree_digest(tree: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in tree.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(tree)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _rename_into_place(staging: Path, path: Path) -> None:
    """Atomic publish; a concurrent builder that got there first wins and ours is dropped."""
    try:
        os.rename(staging, path)
    except OSError:
        if not path.is_dir():
            raise


def pip_command() -> list[str]:
    """pip from a venv next to the cache, seeded offline by the stdlib's bundled pip (ensurepip):
    the controller's own venv is managed by uv and has none."""
    python = PIP_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PIP_VENV)], check=True)
    return [str(python), "-m", "pip"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flavor", choices=sorted(FLAVORS), required=True)
    args = parser.parse_args(argv)
    house = build_wheelhouse(get_flavor(args.flavor))
    print(
        json.dumps(
            {
                "path": str(house.path),
                "bytes": house.total_bytes,
                "plugin_wheel": str(house.plugin_wheel) if house.plugin_wheel else None,
            }
        )
    )


if __name__ == "__main__":
    main()
