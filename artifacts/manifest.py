"""sha256 manifests of directory trees, in `sha256sum` format so nodes check them with coreutils.

A manifest is a mapping of relative path -> sha256 hex digest; its own digest (the sha256 of its
rendered text) names a tree's content in one string, which is what the fingerprint and the diffs
compare.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from artifacts.paths import CACHE_DIR

Manifest = dict[str, str]

MANIFEST_NAME = "MANIFEST.sha256"
"""Every synced tree carries its manifest in `sha256sum` format, written last: a tree whose
manifest matches was pushed completely."""

DIGEST_CACHE = CACHE_DIR / "manifests"
"""Where the controller remembers the digests of the trees it pushes (see `build_manifest`)."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def tree_files(root: Path) -> list[str]:
    """Relative paths of the regular files under `root`, sorted; hidden entries (tool caches such
    as huggingface_hub's `.cache/`) and the manifest itself are not content."""
    files = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            if str(relative) != MANIFEST_NAME:
                files.append(str(relative))
    return sorted(files)


def build_manifest(root: Path, cache_dir: Path | None = None) -> Manifest:
    """The tree's manifest. With `cache_dir`, a file whose size and modification time are those it
    had when last hashed keeps that digest (as git's index and rsync do): weights and wheelhouses
    are gigabytes that every fresh stack would otherwise hash again."""
    if cache_dir is None:
        return {name: file_sha256(root / name) for name in tree_files(root)}
    cache_file = cache_dir / f"{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]}.json"
    known = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    entries = {}
    for name in tree_files(root):
        status = (root / name).stat()
        stamp = [status.st_size, status.st_mtime_ns]
        cached = known.get(name)
        entries[name] = cached if cached and cached[:2] == stamp else [*stamp, file_sha256(root / name)]
    if entries != known:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(entries))
    return {name: entry[2] for name, entry in entries.items()}


def render(manifest: Manifest) -> str:
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(manifest.items()))


def parse(text: str) -> Manifest:
    """Inverse of `render`; ignores lines that are not `<64 hex>  <path>`."""
    manifest = {}
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        if len(digest) == 64 and name:
            manifest[name.lstrip("*")] = digest
    return manifest


def manifest_digest(manifest: Manifest) -> str:
    return hashlib.sha256(render(manifest).encode()).hexdigest()


def lines_digest(lines: Iterable[str]) -> str:
    """Order-independent digest of text lines (a `pip freeze`, a package list)."""
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()
