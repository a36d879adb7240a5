"""Reading a compiled, hash-locked requirements file (pip's format, as `uv pip compile` writes)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_PINNED = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;\\]+)"
)
_HASH = re.compile(r"--hash=sha256:(?P<digest>[0-9a-f]{64})")


@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    sha256: frozenset[str]


def normalize_name(name: str) -> str:
    """PEP 503 name normalization, so lock names and wheel file names compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> list[LockedPackage]:
    """Every requirement of the lock; raises ValueError on one that is not pinned with hashes,
    since pip's `--require-hashes` would refuse the file on the node anyway."""
    packages = []
    for requirement in _logical_lines(path.read_text()):
        pinned = _PINNED.match(requirement)
        if pinned is None:
            raise ValueError(f"{path}: not pinned with ==: {requirement!r}")
        digests = frozenset(m["digest"] for m in _HASH.finditer(requirement))
        if not digests:
            raise ValueError(f"{path}: no sha256 hash for {requirement!r}")
        packages.append(LockedPackage(normalize_name(pinned["name"]), pinned["version"], digests))
    return packages


def _logical_lines(text: str) -> list[str]:
    """Joins backslash continuations and drops comments and blank lines."""
    lines, current = [], ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        continued = line.endswith("\\")
        current += " " + line.rstrip("\\").strip()
        if not continued:
            if current.strip():
                lines.append(current.strip())
            current = ""
    if current.strip():
        lines.append(current.strip())
    return lines
