"""A flavor's wheelhouse on the controller, described for provisioning: built once by
`artifacts.packages.wheelhouse` (keyed by the lock's hash) and hashed into a manifest for the push to nodes."""

from __future__ import annotations

import filecmp
import functools
import hashlib
import shutil
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from uv import find_uv_bin

from artifacts import manifest as manifests
from artifacts.packages.flavors import get_flavor
from artifacts.packages.lockfile import normalize_name, read_lock
from artifacts.packages.wheelhouse import LOCK_NAME, build_wheelhouse, wheelhouse_path


class WheelhouseFiles(BaseModel):
    """A wheelhouse folder as provisioning pushes and installs it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    key: str
    lock_file: str
    installer: str
    plugin_wheels: tuple[str, ...]
    packages: tuple[str, ...]
    manifest: str
    manifest_digest: str
    total_bytes: int
    downloaded_bytes: int = 0


def source_digest(flavor: str) -> str:
    """What the wheelhouse is built from: the lock (its hash names the folder) and the plugin's
    source, so an edit to either diffs at preview."""
    spec = get_flavor(flavor)
    parts = [wheelhouse_path(spec).name]
    if spec.plugin is not None:
        tree = {name: digest for name, digest in manifests.build_manifest(spec.plugin).items() if "__pycache__" not in name}
        parts.append(manifests.manifest_digest(tree))
    return "/".join(parts)


@functools.cache
def env_version(flavor: str) -> str:
    """Names the node venv that holds this wheelhouse's packages: `<flavor>-<16 hex>` of
    `source_digest`, so a new lock or plugin makes a new venv beside the running one, and the name
    is known at preview."""
    return f"{flavor}-{hashlib.sha256(source_digest(flavor).encode()).hexdigest()[:16]}"


def prepare_wheelhouse(flavor: str) -> WheelhouseFiles:
    spec = get_flavor(flavor)
    existed = wheelhouse_path(spec).is_dir()
    house = build_wheelhouse(spec)
    plugin_wheels = (str(house.plugin_wheel),) if house.plugin_wheel else ()
    return describe_wheelhouse(Path(house.path), plugin_wheels, downloaded_bytes=0 if existed else house.total_bytes)


INSTALLER_NAME = "installer/uv"
"""The installer nodes run, relative to the wheelhouse: the controller's own uv (pinned by the
project's lock), so the wheels and what installs them travel together."""


def place_installer(path: Path) -> str:
    """Copies the controller's uv into the wheelhouse unless the same file is there: uv installs the
    lock about twice as fast as pip (parallel unpacking, bytecode compiled on every core)."""
    target = path / INSTALLER_NAME
    source = Path(find_uv_bin())
    # Compared by type, size and modification time (copy2 keeps the time): no 38 MB read per preview.
    if not (target.is_file() and filecmp.cmp(source, target, shallow=True)):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return INSTALLER_NAME


def describe_wheelhouse(path: Path, plugin_wheels: tuple[str, ...] = (), downloaded_bytes: int = 0) -> WheelhouseFiles:
    """A wheelhouse folder (its `requirements.lock` and wheels, plus `plugin_wheels` relative to it)
    as provisioning pushes and installs it, with the installer placed in it."""
    installer = place_installer(path)
    plugin_names = tuple(normalize_name(Path(wheel).name.split("-")[0]) for wheel in plugin_wheels)
    manifest = manifests.build_manifest(path, manifests.DIGEST_CACHE)
    return WheelhouseFiles(
        path=str(path),
        key=path.name,
        lock_file=LOCK_NAME,
        installer=installer,
        plugin_wheels=plugin_wheels,
        packages=tuple(sorted({package.name for package in read_lock(path / LOCK_NAME)} | set(plugin_names))),
        manifest=manifests.render(manifest),
        manifest_digest=manifests.manifest_digest(manifest),
        total_bytes=sum((path / name).stat().st_size for name in manifest),
        downloaded_bytes=downloaded_bytes,
    )
