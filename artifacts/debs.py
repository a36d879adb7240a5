"""Debian and Ubuntu packages for nodes without a route out: resolved and downloaded once on the
controller, for the release the nodes run, whatever the controller itself runs.

Any controller with apt can do it. Each release gets a private apt under `.cache/debs/<release>/apt/`:
its own `etc/` (a sources list for the release's suites on the configured mirror, no preferences, no
trusted keys, no apt.conf.d), lists, cache and an empty dpkg status, so nothing counts as installed.
apt reads it through APT_CONFIG, which apt reads before anything else and which moves `Dir::Etc` away
from /etc/apt: the controller's own apt configuration and state are never read nor written
(credentials for a private mirror go in `.cache/debs/<release>/apt/etc/auth.conf.d/`). apt checks
each suite's InRelease against the distribution's archive keyring (`signed-by`) and every .deb
against the signed index.

We take the dependency closure of the wanted packages (first alternative of each `a | b`, first
provider of a virtual package) minus `Priority: required` packages, which every system of the
release has, and keep the .debs in `.cache/debs/<release>/pool/`; the node operation pushes only what
a node lacks, after checking the node runs that release.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from artifacts.paths import CACHE_DIR

DEBS_CACHE = CACHE_DIR / "debs"
_DEPENDENCY = re.compile(r"^(?P<alternative>\|)?(Pre)?Depends: (?P<target>\S+)$")

ReleaseName = Literal["debian-12", "debian-13", "ubuntu-22.04", "ubuntu-24.04"]
"""`<os-release ID>-<VERSION_ID>` of a supported node release."""


@dataclass(frozen=True)
class Release:
    distribution: Literal["debian", "ubuntu"]
    codename: str
    components: tuple[str, ...]


RELEASES: dict[str, Release] = {
    "debian-12": Release("debian", "bookworm", ("main",)),
    "debian-13": Release("debian", "trixie", ("main",)),
    # libnuma1 and a few others of the nodes' packages live in universe on Ubuntu.
    "ubuntu-22.04": Release("ubuntu", "jammy", ("main", "universe")),
    "ubuntu-24.04": Release("ubuntu", "noble", ("main", "universe")),
}
ARCHITECTURE = "amd64"
"""The nodes' architecture (set for apt, so an arm64 controller fetches amd64 .debs too)."""

MIRROR_URL = re.compile(r"^(https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/%+-]*)?|file:///[A-Za-z0-9._~/%+-]*)$")
"""An http(s) mirror, or `file:///path` of a mirror copy on the controller: written into a sources list."""
_APT_PATH = re.compile(r"^/[A-Za-z0-9._/+-]*$")
"""A path written into the private apt.conf or sources list: nothing apt's parser could read otherwise."""

DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
"""From `debian-archive-keyring` (tools/system-packages.tsv); 2023.3+deb12u2 holds trixie's keys too."""
UBUNTU_KEYRING = Path("/usr/share/keyrings/ubuntu-archive-keyring.gpg")
"""From `ubuntu-keyring`: installed on Ubuntu, installable on Debian 13, absent from Debian 12; see `keyring`."""
_KEYRING_RELEASE = "debian-13"
"""The Debian release whose signed archive carries `ubuntu-keyring`, for controllers without it."""


class Mirrors(BaseModel):
    """Where the controller fetches each distribution's packages from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    debian_mirror: str = Field("http://deb.debian.org/debian", pattern=MIRROR_URL.pattern)
    debian_security_mirror: str = Field("http://deb.debian.org/debian-security", pattern=MIRROR_URL.pattern)
    ubuntu_mirror: str = Field(
        "http://archive.ubuntu.com/ubuntu",
        pattern=MIRROR_URL.pattern,
        description="Ubuntu's mirrors carry `<codename>-security` beside the release: one URL serves all three suites.",
    )


class DebFile(BaseModel):
    """One .deb in the controller's cache and the packages it depends on (first alternatives)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    version: str
    depends: tuple[str, ...] = ()


class DebFiles(BaseModel):
    """The .debs of the wanted `packages` and their closure for `release`, in `debs_dir`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    release: ReleaseName
    debs_dir: str
    debs: dict[str, DebFile]
    packages: tuple[str, ...]
    downloaded_bytes: int = 0


def sources_list(release: str, mirrors: Mirrors, keyring: Path) -> str:
    """The release's suites (itself, -updates, -security) in one-line sources format, each signed-by `keyring`."""
    spec = RELEASES[release]
    if spec.distribution == "debian":
        main, security = mirrors.debian_mirror, mirrors.debian_security_mirror
    else:
        main = security = mirrors.ubuntu_mirror
    suites = ((main, spec.codename), (main, f"{spec.codename}-updates"), (security, f"{spec.codename}-security"))
    options = f"[signed-by={_apt_path(keyring)}]"
    return "".join(f"deb {options} {uri} {suite} {' '.join(spec.components)}\n" for uri, suite in suites)


class PrivateApt:
    """One release's apt configuration and state under `root`; `run` calls apt with it alone."""

    def __init__(self, root: Path, sources: str):
        self.root = root
        self.sources = sources

    @property
    def config_file(self) -> Path:
        return self.root / "apt.conf"

    def config(self) -> str:
        """The APT_CONFIG file: every directory apt reads or writes, under `root`."""
        root = _apt_path(self.root)
        settings = {
            "Dir::Etc": f"{root}/etc/",
            "Dir::State": f"{root}/state/",
            "Dir::State::status": f"{root}/state/status",
            "Dir::Cache": f"{root}/cache/",
            # No binary caches kept: rebuilt in a second, they would double the size of the lists.
            "Dir::Cache::pkgcache": "",
            "Dir::Cache::srcpkgcache": "",
            "Dir::Log": f"{root}/log/",
            "APT::Architecture": ARCHITECTURE,
            "APT::Architectures": ARCHITECTURE,
            "Acquire::Languages": "none",
            "Acquire::GzipIndexes": "true",
            "Acquire::AllowInsecureRepositories": "false",
            "Acquire::AllowDowngradeToInsecureRepositories": "false",
            # An InRelease that fails its signature check is an error, not a warning that keeps the old lists.
            "APT::Update::Error-Mode": "any",
        }
        return "".join(f'{key} "{value}";\n' for key, value in settings.items())

    def write(self) -> None:
        """Creates the tree apt expects, an empty dpkg status, the sources list and the config."""
        for folder in ("etc/apt.conf.d", "etc/sources.list.d", "etc/preferences.d", "etc/trusted.gpg.d",
                       "state/lists/partial", "cache/archives/partial", "log"):  # fmt: skip
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        (self.root / "state" / "status").write_text("")
        (self.root / "etc" / "sources.list").write_text(self.sources)
        self.config_file.write_text(self.config())

    def env(self) -> dict[str, str]:
        return {**os.environ, "APT_CONFIG": str(self.config_file), "LC_ALL": "C.UTF-8"}

    def run(self, argv: list[str], cwd: Path | None = None) -> str:
        return _run(argv, cwd=cwd, env=self.env())


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


def _index(cache: Path) -> dict[str, tuple[str, str]]:
    """{package: (file name, version)} of the .debs in `cache`; the newest file wins."""
    index: dict[str, tuple[str, str]] = {}
    for deb in sorted(cache.glob("*.deb"), key=lambda path: path.stat().st_mtime):
        package, version = _run(["dpkg-deb", "--show", "--showformat=${Package}\t${Version}", str(deb)]).split("\t")
        index[package] = (deb.name, version)
    return index


def _size(cache: Path) -> int:
    return sum(path.stat().st_size for path in cache.glob("*.deb"))


def _run(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def _candidates(apt: PrivateApt, names: list[str]) -> dict[str, tuple[str, str]]:
    """{package: (candidate version, priority)} from the release's indexes."""
    found = {}
    for stanza in apt.run(["apt-cache", "show", "--no-all-versions", *names]).split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line.startswith(" "))
        if "Package" in fields:
            found[fields["Package"]] = (fields.get("Version", ""), fields.get("Priority", ""))
    return found


def _stale(names: list[str], have: dict[str, tuple[str, str]], candidates: dict[str, tuple[str, str]]) -> list[str]:
    """The packages whose .deb in the pool is missing or not the release's candidate version."""
    return [name for name in names if name not in have or have[name][1] != candidates[name][0]]


def _apt_path(path: Path) -> str:
    if not _APT_PATH.match(str(path)):
        raise RuntimeError(f"{path}: apt paths may hold only letters, digits and `._/+-`; move the checkout or cache")
    return str(path)


def keyring(release: str, mirrors: Mirrors, cache: Path = DEBS_CACHE) -> Path:
    """The archive keyring apt checks `release`'s InRelease files with.

    Debian 12 ships no `ubuntu-keyring`; a controller without the system's Ubuntu keyring takes it from
    Debian 13's package, itself checked against Debian's keyring, and keeps it in `cache/keyrings/`."""
    if RELEASES[release].distribution == "debian":
        if not DEBIAN_KEYRING.is_file():
            raise RuntimeError(f"{DEBIAN_KEYRING} is missing: install debian-archive-keyring (`make setup` does)")
        return DEBIAN_KEYRING
    if UBUNTU_KEYRING.is_file():
        return UBUNTU_KEYRING
    kept = cache / "keyrings" / UBUNTU_KEYRING.name
    if not kept.is_file():
        package = prepare_debs(["ubuntu-keyring"], _KEYRING_RELEASE, mirrors, cache)
        with tempfile.TemporaryDirectory(dir=cache) as unpacked:
            _run(["dpkg-deb", "--extract", str(Path(package.debs_dir) / package.debs["ubuntu-keyring"].file), unpacked])
            kept.parent.mkdir(exist_ok=True)
            os.replace(Path(unpacked) / UBUNTU_KEYRING.relative_to("/"), kept)  # whole or absent, never half
    return kept


def prepare_debs(
    packages: list[str], release: str, mirrors: Mirrors | None = None, cache: Path = DEBS_CACHE
) -> DebFiles:
    """The .debs of `packages` and their closure for `release` in `cache/<release>/pool/`, downloading
    only the missing ones (the package indexes are refreshed each time: cheap when unchanged)."""
    mirrors = mirrors or Mirrors()
    if shutil.which("apt-get") is None:
        raise RuntimeError(
            "pushing .debs to nodes without a route out needs apt-get on the controller (any Debian or Ubuntu): "
            f"run the stack from one, or give the {release} hosts a route out (`route_out: true`)"
        )
    root = cache / release
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a Pulumi run and a pyinfra load may fill the same release at once
        apt = PrivateApt(root / "apt", sources_list(release, mirrors, keyring(release, mirrors, cache)))
        return _fill_pool(apt, root / "pool", packages, release)


def _fill_pool(apt: PrivateApt, pool: Path, packages: list[str], release: str) -> DebFiles:
    apt.write()
    apt.run(["apt-get", "update"])
    graph = parse_depends(apt.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                                   "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *packages]))  # fmt: skip
    candidates = _candidates(apt, list(graph))
    names = closure(packages, graph, {name for name, (_, priority) in candidates.items() if priority == "required"})
    pool.mkdir(exist_ok=True)
    before = _size(pool)
    if wanted := _stale(names, _index(pool), candidates):
        apt.run(["apt-get", "download", *wanted], cwd=pool)
    have = _index(pool)
    if missing := _stale(names, have, candidates):
        raise RuntimeError(f"apt-get download left no .deb of the candidate version for {', '.join(missing)} in {pool}")
    debs = {
        name: DebFile(
            file=have[name][0], version=have[name][1], depends=tuple(d for d in graph.get(name, []) if d in names)
        )
        for name in names
    }
    return DebFiles(
        release=release, debs_dir=str(pool), debs=debs, packages=tuple(packages), downloaded_bytes=_size(pool) - before
    )
