"""Fixtures for the node-software tests.

Tests marked `slow` run inside a CPU node venv (vLLM, torch, Ray; about 6.5 GB) at
`.cache/venvs/cpu`, built on first use from the CPU wheelhouse with the commands a node runs, and
rebuilt when the wheelhouse or the plugin wheel changes.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from artifacts.packages.flavors import FLAVORS, get_flavor
from artifacts.packages.wheelhouse import build_wheelhouse
from artifacts.paths import REPO_ROOT
from tests.artifacts.install import install_commands

CPU_VENV = REPO_ROOT / ".cache" / "venvs" / "cpu"
BUILT_FROM = CPU_VENV / "built-from"

# The plugin's pure modules are tested on the controller, where it is not installed.
sys.path.insert(0, str(FLAVORS["cpu"].plugin / "src"))


@pytest.fixture(scope="session")
def cpu_venv_python() -> Path:
    wheelhouse = build_wheelhouse(get_flavor("cpu"))
    source = f"{wheelhouse.path.name}/{wheelhouse.plugin_wheel}\n"
    if not BUILT_FROM.is_file() or BUILT_FROM.read_text() != source:
        shutil.rmtree(CPU_VENV, ignore_errors=True)
        for command in install_commands(
            PurePosixPath(CPU_VENV), PurePosixPath(wheelhouse.path), wheelhouse.plugin_wheel, python=sys.executable
        ):
            subprocess.run(command, shell=True, check=True, capture_output=True)
        BUILT_FROM.write_text(source)
    return CPU_VENV / "bin" / "python"


@pytest.fixture
def run_in_cpu_venv(cpu_venv_python):
    """Runs Python code in the CPU venv; returns the last line it printed."""

    def run(code: str, *args: str) -> str:
        # Explicit auth mode: left unset, a local ray.init() writes a token to
        # ~/.ray/auth_token, which later `ray start` runs on this machine would pick up.
        result = subprocess.run(
            [str(cpu_venv_python), "-c", code, *args],
            capture_output=True,
            text=True,
            timeout=600,
            env=os.environ | {"RAY_AUTH_MODE": "disabled"},
        )
        assert result.returncode == 0, result.stderr[-4000:]
        return result.stdout.strip().splitlines()[-1]

    return run
