"""The nodes' Python: CPython built once on the controller from its source tarball, cached under
`.cache/python/<key>/`, and pushed to every node at one fixed prefix.

Ray refuses nodes whose Python differs, and each OS release ships another one (Debian 12: 3.11.2,
13: 3.13, Ubuntu 22.04: 3.10, 24.04: 3.12), so the stack brings its own. The tree is self-contained
except for glibc: the shared libraries its modules link (OpenSSL, libffi, SQLite, ...) are copied
into `<prefix>/lib`, which every binary of the tree finds first through its DT_RPATH, so the same
tree runs whatever the node's library packages are called (libssl3 vs libssl3t64). What it still
needs from the node is a glibc at least as new as the newest symbol version its files use (the
"glibc floor"), recorded in `build.json` for the node check.

    python -m artifacts.python_build --prefix /opt/ray-vllm-stack/python/3.11.2    # builds or reuses
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from artifacts import manifest as manifests
from artifacts.packages.flavors import NODE_PYTHON_VERSION
from artifacts.paths import CACHE_DIR

PYTHON_CACHE = CACHE_DIR / "python"
SOURCES = PYTHON_CACHE / "sources"
BUILD_RECORD = "build.json"
"""Written last into `<cache>/<key>/`: a key folder without it is an interrupted build."""

DEFAULT_SOURCE = "http://deb.debian.org/debian/pool/main/p/python3.11/python3.11_3.11.2.orig.tar.gz"
"""Debian's copy of python.org's Python-3.11.2.tgz (the same bytes, same sha256)."""
DEFAULT_SHA256 = "2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849"

GLIBC_SONAMES = frozenset({
    "linux-vdso.so.1", "ld-linux-x86-64.so.2", "libc.so.6", "libm.so.6", "libmvec.so.1", "libpthread.so.0",
    "libdl.so.2", "librt.so.1", "libutil.so.1", "libresolv.so.2", "libanl.so.1",
})  # fmt: skip
"""Libraries of glibc itself: the node's own, never copied (they must match its loader)."""

_SYMBOL_VERSION = re.compile(r"\bName: GLIBC_(\d+(?:\.\d+)+)\b")
_NEEDED = re.compile(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]")
_RESOLVED = re.compile(r"^\s*(\S+) => (/\S+) \(0x[0-9a-f]+\)$")


@dataclass(frozen=True)
class BuildRecipe:
    """Everything the build does besides its source: the cache key hashes it, so a change here
    builds anew."""

    prefix: str
    version: str = NODE_PYTHON_VERSION
    configure: tuple[str, ...] = (
        "--disable-test-modules",  # neither builds nor installs the test suite (~100 MB)
        "--with-ensurepip=no",  # pip is not installed into the prefix; `-m venv` still bundles it
        # --disable-new-dtags: DT_RPATH, which (unlike DT_RUNPATH) also serves the bundled
        # libraries' own dependencies (libssl -> libcrypto) and every module the interpreter loads.
        "LDFLAGS=-Wl,-rpath,{prefix}/lib -Wl,--disable-new-dtags",
        # Modules no node uses whose libraries would raise the glibc floor or bundle a desktop:
        # _crypt's libxcrypt (Debian 12's needs glibc 2.36, above Ubuntu 22.04's 2.35), nis's
        # libnsl/libtirpc/Kerberos, _tkinter's Tcl/Tk/X11/fontconfig.
        "py_cv_module__crypt=n/a",
        "py_cv_module_nis=n/a",
        "py_cv_module__tkinter=n/a",
    )
    trim: tuple[str, ...] = (
        "lib/python{minor}/idlelib", "lib/python{minor}/tkinter", "lib/python{minor}/turtledemo",
        "lib/python{minor}/lib2to3/tests",
        "lib/libpython{minor}.a", "lib/python{minor}/config-{minor}-*/libpython{minor}.a",
        "lib/python{minor}/**/__pycache__/*.opt-1.pyc", "lib/python{minor}/**/__pycache__/*.opt-2.pyc",
        "bin/idle3*", "bin/pydoc3*", "bin/2to3*", "share",
    )  # fmt: skip
    """Removed after install, relative to the prefix: GUI and docs tools, the static library (only
    embedding needs it) and the bytecode of -O/-OO, which nothing on a node runs."""
    strip: tuple[str, ...] = ("strip", "--strip-unneeded")
    """Run on the programs and modules: the build's debug symbols are most of their size."""
    smoke_test: str = "import ssl, ctypes, sqlite3, lzma, bz2, zlib, uuid, venv, ensurepip, readline, decimal, json"

    @property
    def minor(self) -> str:
        return ".".join(self.version.split(".")[:2])

    def configure_args(self) -> list[str]:
        return [f"--prefix={self.prefix}", *(arg.format(prefix=self.prefix) for arg in self.configure)]

    def trim_patterns(self) -> list[str]:
        return [pattern.format(minor=self.minor) for pattern in self.trim]

    def key(self, source_sha256: str) -> str:
        """Names the cache folder: the source's digest and this recipe."""
        text = json.dumps({"source": source_sha256, "recipe": asdict(self)}, sort_keys=True)
        return f"{self.version}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


class PythonBuild(BaseModel):
    """A built interpreter tree as provisioning pushes and checks it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    """The tree on the controller: what goes to `prefix` on a node."""
    key: str
    prefix: str
    version: str
    glibc_floor: str
    """The newest GLIBC_x.y symbol version any file of the tree needs."""
    libraries: tuple[str, ...]
    """The non-glibc shared libraries copied into `<prefix>/lib`."""
    manifest: str
    manifest_digest: str
    total_bytes: int
    build_seconds: float = 0
    """How long the build took (0: taken from the cache)."""


class BuildError(RuntimeError):
    pass


def prepare_python(
    prefix: str, source: str = DEFAULT_SOURCE, sha256: str = DEFAULT_SHA256, cache: Path = PYTHON_CACHE
) -> PythonBuild:
    """The interpreter for `prefix`, built from `source` (an http(s) or file URL, or a local path)
    unless `cache` already holds it."""
    recipe = BuildRecipe(prefix=prefix)
    folder = cache / recipe.key(sha256)
    cached = (folder / BUILD_RECORD).is_file()
    if not cached:
        build(recipe, fetch_source(source, sha256, cache / "sources"), folder)
    record = json.loads((folder / BUILD_RECORD).read_text())
    return describe_build(folder, record, build_seconds=0 if cached else record["build_seconds"])


def describe_build(folder: Path, record: dict, build_seconds: float = 0) -> PythonBuild:
    tree = folder / "tree"
    manifest = manifests.build_manifest(tree, manifests.DIGEST_CACHE)
    return PythonBuild(
        path=str(tree),
        key=folder.name,
        prefix=record["prefix"],
        version=record["version"],
        glibc_floor=record["glibc_floor"],
        libraries=tuple(record["libraries"]),
        manifest=manifests.render(manifest),
        manifest_digest=manifests.manifest_digest(manifest),
        total_bytes=sum((tree / name).stat().st_size for name in manifest),
        build_seconds=build_seconds,
    )


def fetch_source(source: str, sha256: str, sources: Path) -> Path:
    """The source tarball, checked against `sha256`: a local file in place, a URL downloaded once
    into `sources/<sha256>.tar.gz`."""
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme in ("", "file"):
        path = Path(urllib.parse.unquote(parsed.path) if parsed.scheme else source)
        if not path.is_file():
            raise BuildError(f"python source {source}: no such file")
        _check_digest(path, sha256, source)
        return path
    if parsed.scheme not in ("http", "https"):
        raise BuildError(f"python source {source}: use an http(s) or file URL, or a local path")
    target = sources / f"{sha256}.tar.gz"
    if target.is_file():
        return target
    sources.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(source, timeout=60) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise BuildError(f"python source {source}: download failed: {error}") from None
    _check_digest(partial, sha256, source)
    partial.rename(target)
    return target


def _check_digest(path: Path, sha256: str, source: str) -> None:
    found = manifests.file_sha256(path)
    if found != sha256:
        if path.suffix == ".part":
            path.unlink()
        raise BuildError(f"python source {source}: sha256 is {found}, expected {sha256}")


def build(recipe: BuildRecipe, tarball: Path, folder: Path) -> None:
    """configure, make, `make install` into a staging root, trim, bundle the libraries, check the
    result runs, record it; the finished tree replaces `folder`."""
    work = folder.with_name(f"{folder.name}.building")
    shutil.rmtree(work, ignore_errors=True)
    (work / "src").mkdir(parents=True)
    log = work / "build.log"
    started = time.monotonic()
    _run(["tar", "-xzf", str(tarball), "-C", str(work / "src"), "--strip-components=1"], log)
    source = work / "src"
    _run(["./configure", *recipe.configure_args()], log, cwd=source)
    _run(["make", f"-j{os.cpu_count() or 1}"], log, cwd=source)
    staging = work / "staging"
    _run(["make", "install", f"DESTDIR={staging}"], log, cwd=source)
    tree = staging / recipe.prefix.lstrip("/")
    installed_bytes = tree_bytes(tree)
    trim(tree, recipe.trim_patterns())
    _run([*recipe.strip, *map(str, elf_files(tree))], log)
    libraries = bundle_libraries(tree)
    version = _smoke_test(tree, recipe, log)
    if version != recipe.version:
        raise BuildError(f"{tarball} builds Python {version}, but the package locks are for {recipe.version}")
    record = {
        "version": version,
        "prefix": recipe.prefix,
        "glibc_floor": glibc_floor(elf_files(tree)),
        "libraries": libraries,
        "installed_bytes": installed_bytes,
        "tree_bytes": tree_bytes(tree),
        "build_seconds": round(time.monotonic() - started, 1),
        "recipe": asdict(recipe),
        "source_sha256": manifests.file_sha256(tarball),
    }
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    tree.rename(folder / "tree")
    (folder / BUILD_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    shutil.rmtree(work)


def trim(tree: Path, patterns: list[str]) -> None:
    for pattern in patterns:
        for path in tree.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def elf_files(tree: Path) -> list[Path]:
    """The tree's programs and shared objects (the interpreter, extension modules, bundled
    libraries), symlinks and object files (`python.o` of the config folder) left out."""
    found = []
    for path in sorted(tree.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as stream:
                header = stream.read(18)
            if header[:4] == b"\x7fELF" and int.from_bytes(header[16:18], "little") in (2, 3):  # ET_EXEC, ET_DYN
                found.append(path)
    return found


def bundle_libraries(tree: Path) -> list[str]:
    """Copies every non-glibc library the tree's ELF files load (as the controller's loader
    resolves them, dependencies of dependencies included) into `<tree>/lib`; returns their
    sonames. Fails when one cannot be resolved or a file needs a library the tree lacks."""
    libraries: dict[str, Path] = {}
    for path in elf_files(tree):
        for soname, resolved in resolved_libraries(_output(["ldd", str(path)])).items():
            if soname not in GLIBC_SONAMES:
                libraries[soname] = resolved
    lib = tree / "lib"
    for soname, resolved in sorted(libraries.items()):
        shutil.copyfile(resolved, lib / soname)
        (lib / soname).chmod(0o644)
    provided = {path.name for path in elf_files(tree)}
    for path in elf_files(tree):
        missing = needed_libraries(_output(["readelf", "-d", "-W", str(path)])) - provided - GLIBC_SONAMES
        if missing:
            raise BuildError(f"{path.relative_to(tree)} needs {', '.join(sorted(missing))}, which the tree lacks")
    return sorted(libraries)


def resolved_libraries(ldd_output: str) -> dict[str, Path]:
    """{soname: path} of `ldd` output; a library it cannot find is an error."""
    libraries = {}
    for line in ldd_output.splitlines():
        if "=> not found" in line:
            raise BuildError(f"ldd: {line.strip()}")
        if match := _RESOLVED.match(line):
            libraries[match[1]] = Path(match[2])
    return libraries


def needed_libraries(readelf_dynamic: str) -> set[str]:
    """The DT_NEEDED sonames of `readelf -d` output."""
    return set(_NEEDED.findall(readelf_dynamic))


def glibc_floor(files: list[Path]) -> str:
    """The newest GLIBC_x.y symbol version `files` require (`readelf -V`): the oldest glibc the tree
    runs on."""
    return max_glibc_version(_output(["readelf", "-V", "-W", *map(str, files)]))


def max_glibc_version(readelf_versions: str) -> str:
    versions = {tuple(int(part) for part in found.split(".")) for found in _SYMBOL_VERSION.findall(readelf_versions)}
    if not versions:
        raise BuildError("no GLIBC symbol versions found: not a glibc build?")
    return ".".join(map(str, max(versions)))


def tree_bytes(tree: Path) -> int:
    return sum(path.stat().st_size for path in tree.rglob("*") if path.is_file() and not path.is_symlink())


def _smoke_test(tree: Path, recipe: BuildRecipe, log: Path) -> str:
    """Imports the modules provisioning and vLLM rely on (a missing -dev package silently drops a
    module) and returns the version; PYTHONHOME points at the staging tree."""
    python = tree / "bin" / f"python{recipe.minor}"
    code = f"{recipe.smoke_test}; import platform; print(platform.python_version())"
    environment = {"PATH": "/usr/bin:/bin", "PYTHONHOME": str(tree)}
    return _run([str(python), "-c", code], log, env=environment).strip().splitlines()[-1]


def _run(argv: list[str], log: Path, cwd: Path | None = None, env: dict | None = None) -> str:
    """Runs a build command, its output appended to `log`; a failure names the command and shows
    the log's end."""
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out.write(done.stdout)
    if done.returncode != 0:
        raise BuildError(f"`{' '.join(argv[:2])}` exited {done.returncode}; see {log}:\n{done.stdout[-3000:]}")
    return done.stdout


def _output(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"`{' '.join(argv[:3])}` exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", required=True, help="where the tree lives on nodes")
    parser.add_argument("--source", default=DEFAULT_SOURCE)
    parser.add_argument("--sha256", default=DEFAULT_SHA256)
    arguments = parser.parse_args()
    built = prepare_python(arguments.prefix, arguments.source, arguments.sha256)
    print(json.dumps({key: value for key, value in built.model_dump().items() if key != "manifest"}, indent=2))


if __name__ == "__main__":
    main()
