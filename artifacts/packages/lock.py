"""Compiles a flavor's `requirements.in` into its hash-locked `requirements.lock`.

    python -m artifacts.packages.lock --flavor cpu

uv resolves for the nodes' interpreter (CPython 3.11.2, manylinux glibc 2.36, x86_64) whatever
Python the controller runs. A flavor's `overrides.txt` replaces a dependency's own pin and its
`excludes.txt` drops packages from the resolution; both are declared files, so the lock says
exactly what differs from upstream metadata. A flavor whose lock holds a CUDA torch also gets
`cuda.json` (see `artifacts.packages.cuda`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path

from artifacts.packages.cuda import cuda_manifest, write_manifest
from artifacts.packages.flavors import (
    FLAVORS,
    NODE_ARCH,
    NODE_GLIBC_MINOR,
    NODE_PYTHON_VERSION,
    REPO_ROOT,
    Flavor,
    get_flavor,
)
from artifacts.packages.lockfile import read_lock

UV_PLATFORM = f"{NODE_ARCH}-manylinux_2_{NODE_GLIBC_MINOR}"


def find_uv() -> str:
    """uv from $UV, else the repository's tool venv, else PATH."""
    tool_venv = str(REPO_ROOT / ".tools" / "uv-venv" / "bin" / "uv")
    for candidate in (os.environ.get("UV"), tool_venv, shutil.which("uv")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise FileNotFoundError("uv not found: set $UV or install it into .tools/uv-venv")


def compile_command(flavor: Flavor, uv: str) -> list[str]:
    """The `uv pip compile` call, with paths relative to the repository root so that the
    command uv records in the lock's header is the same on every machine."""

    def rel(path: Path) -> str:
        return str(path.relative_to(REPO_ROOT))

    command = [
        uv, "pip", "compile", rel(flavor.requirements_in),
        "--output-file", rel(flavor.lock_file),
        "--generate-hashes",
        "--python-version", NODE_PYTHON_VERSION,
        "--python-platform", UV_PLATFORM,
        "--custom-compile-command", f"python -m artifacts.packages.lock --flavor {flavor.name}",
    ]  # fmt: skip
    if flavor.overrides:
        command += ["--overrides", rel(flavor.overrides)]
    if flavor.excludes:
        command += ["--excludes", rel(flavor.excludes)]
    return command


def compile_lock(flavor: Flavor, uv: str | None = None) -> None:
    # uv echoes the whole lock to stdout besides writing --output-file.
    subprocess.run(
        compile_command(flavor, uv or find_uv()),
        cwd=REPO_ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    packages = read_lock(flavor.lock_file)
    if flavor.cuda:
        write_manifest(flavor.cuda_manifest, cuda_manifest(packages))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flavor", choices=sorted(FLAVORS), required=True)
    args = parser.parse_args(argv)
    compile_lock(get_flavor(args.flavor))


if __name__ == "__main__":
    main()
