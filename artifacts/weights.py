"""Model weights on the controller, fetched once: a local directory as it is, or a Hugging Face
repository at a pinned revision downloaded with huggingface_hub into `.cache/models/hf/`.

huggingface_hub honours HF_ENDPOINT (a mirror) from the environment; an explicit `endpoint` wins.
The token is used for the download only and never written anywhere by us.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from artifacts import manifest as manifests
from artifacts.paths import CACHE_DIR

HF_CACHE = CACHE_DIR / "models" / "hf"
HF_REPO_AT_REVISION = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95})@(?P<revision>[0-9a-f]{40})$")
"""`owner/repo@<commit>`: only a full commit hash pins weights (a branch or tag can move)."""


class ModelFiles(BaseModel):
    """The model's folder on the controller and its sha256 manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    local_path: str
    manifest: str
    manifest_digest: str
    total_bytes: int
    downloaded_bytes: int = 0


def hf_snapshot_dir(huggingface: str, cache: Path = HF_CACHE) -> Path:
    """`owner/repo@revision` -> `<cache>/owner--repo/<revision>`: one folder per pinned revision."""
    repo, revision = _split(huggingface)
    return cache / repo.replace("/", "--") / revision


def source_stamp(path: str | None, huggingface: str | None) -> str:
    """Cheap identity of the model's source, computed at every preview: a pinned revision names
    its content; a local folder is described by its files' names, sizes and modification times
    (hashing gigabytes on every preview would be too slow; the manifest is hashed on apply)."""
    if huggingface:
        return huggingface
    root = Path(path)
    digest = hashlib.sha256()
    for name in manifests.tree_files(root) if root.is_dir() else []:
        stat = (root / name).stat()
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return f"local:{digest.hexdigest()}"


def prepare_model(
    path: str | None,
    huggingface: str | None,
    token: str | None = None,
    endpoint: str | None = None,
    cache: Path = HF_CACHE,
) -> ModelFiles:
    """The model's local folder and its sha256 manifest, downloading what is missing."""
    downloaded = 0
    if huggingface:
        local = hf_snapshot_dir(huggingface, cache)
        before = _size(local)
        _download(huggingface, local, token, endpoint)
        downloaded = max(_size(local) - before, 0)
    else:
        local = Path(path)
        if not local.is_dir():
            raise FileNotFoundError(f"model.path {local} is not a directory")
    manifest = manifests.build_manifest(local, manifests.DIGEST_CACHE)
    if not manifest:
        raise ValueError(f"model folder {local} holds no files")
    return ModelFiles(
        local_path=str(local),
        manifest=manifests.render(manifest),
        manifest_digest=manifests.manifest_digest(manifest),
        total_bytes=sum((local / name).stat().st_size for name in manifest),
        downloaded_bytes=downloaded,
    )


def _download(huggingface: str, local: Path, token: str | None, endpoint: str | None) -> None:
    from huggingface_hub import snapshot_download

    repo, revision = _split(huggingface)
    local.mkdir(parents=True, exist_ok=True)
    snapshot_download(repo, revision=revision, local_dir=local, token=token or None, endpoint=endpoint or None)


def _split(huggingface: str) -> tuple[str, str]:
    match = HF_REPO_AT_REVISION.match(huggingface)
    if not match:
        raise ValueError(f"{huggingface!r} is not owner/repo@revision")
    return match["repo"], match["revision"]


def _size(root: Path) -> int:
    """Bytes of the model's files (huggingface_hub's own metadata under `.cache/` left out)."""
    return sum((root / name).stat().st_size for name in manifests.tree_files(root)) if root.is_dir() else 0
