"""Debian packages for nodes without a route out: resolved and downloaded once on the controller.

The controller runs the nodes' Debian release, so its apt knows the right versions. We take the
dependency closure of the wanted packages (first alternative of each `a | b`, first provider of a
virtual package) minus `Priority: required` packages, which every Debian system has, and keep the
.debs in `.cache/debs/`; the node operation pushes only what a node lacks.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from artifacts.paths import CACHE_DIR

DEBS_CACHE = CACHE_DIR / "debs"
_DEPENDENCY = re.compile(r"^(?P<alternative>\|)?(Pre)?Depends: (?P<target>\S+)$")


class DebFile(BaseModel):
    """One .deb in the controller's cache and the packages it depends on (first alternatives)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    version: str
    depends: tuple[str, ...] = ()


class DebFiles(BaseModel):
    """The .debs of the wanted `packages` and their closure, in `debs_dir`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    debs_dir: str
    debs: dict[str, DebFile]
    packages: tuple[str, ...]
    downloaded_bytes: int = 0


def parse_depends(output: str) -> dict[str, list[str]]:
    """`apt-cache depends --recurse` output -> {package: [dependency, ...]} (first alternatives)."""
    graph: dict[str, list[str]] = {}
    package = None
    entries: list[list] = []  # [continues_alternative, target or None] per dependency line

    def close() -> None:
        if package is not None:
            graph[package] = _first_alternatives(entries)

    for line in output.splitlines():
        if not line.startswith(" "):
            close()
            package, entries = line.strip(), []
        elif match := _DEPENDENCY.match(line.strip()):
            target = match["target"]
            entries.append([bool(match["alternative"]), None if target.startswith("<") else target])
        elif line.startswith("    ") and entries and entries[-1][1] is None:
            entries[-1][1] = line.strip()  # first provider of a virtual package
    close()
    return graph


def _first_alternatives(entries: list[list]) -> list[str]:
    chosen: list[str] = []
    group: list[str | None] = []
    for continues, target in entries:
        group.append(target)
        if not continues:
            first = next((name for name in group if name), None)
            if first and first not in chosen:
                chosen.append(first)
            group = []
    return chosen


def closure(packages: list[str], graph: dict[str, list[str]], required: set[str]) -> list[str]:
    """`packages` and everything they depend on, except packages every system has."""
    seen: list[str] = []
    pending = list(packages)
    while pending:
        name = pending.pop(0)
        if name in seen or (name in required and name not in packages):
            continue
        seen.append(name)
        pending += graph.get(name, [])
    return seen


def prepare_debs(packages: list[str], cache: Path = DEBS_CACHE) -> DebFiles:
    """The .debs of `packages` and their closure in `cache`, downloading only the missing ones."""
    graph = parse_depends(_run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                                "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *packages]))  # fmt: skip
    names = closure(packages, graph, _required_priority(list(graph)))
    cache.mkdir(parents=True, exist_ok=True)
    have = _index(cache)
    wanted = [name for name in names if name not in have]
    before = _size(cache)
    if wanted:
        _run(["apt-get", "download", *wanted], cwd=cache)
        have = _index(cache)
    missing = [name for name in names if name not in have]
    if missing:
        raise RuntimeError(f"apt-get download left no .deb for {', '.join(missing)} in {cache}")
    debs = {
        name: DebFile(file=have[name][0], version=have[name][1], depends=tuple(d for d in graph.get(name, []) if d in names))
        for name in names
    }
    return DebFiles(debs_dir=str(cache), debs=debs, packages=tuple(packages), downloaded_bytes=_size(cache) - before)


def _required_priority(names: list[str]) -> set[str]:
    required, package = set(), None
    for line in _run(["apt-cache", "show", "--no-all-versions", *names]).splitlines():
        if line.startswith("Package: "):
            package = line.split(": ", 1)[1]
        elif line.startswith("Priority: ") and line.split(": ", 1)[1] == "required":
            required.add(package)
    return required


def _index(cache: Path) -> dict[str, tuple[str, str]]:
    """{package: (file name, version)} of the .debs in `cache`; the newest file wins."""
    index: dict[str, tuple[str, str]] = {}
    for deb in sorted(cache.glob("*.deb"), key=lambda path: path.stat().st_mtime):
        package, version = _run(["dpkg-deb", "--show", "--showformat=${Package}\t${Version}", str(deb)]).split("\t")
        index[package] = (deb.name, version)
    return index


def _size(cache: Path) -> int:
    return sum(path.stat().st_size for path in cache.glob("*.deb"))


def _run(argv: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout
