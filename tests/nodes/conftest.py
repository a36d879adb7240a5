"""Fixtures for the node-software tests.

Tests marked `slow` run inside the CPU node venv (vLLM, torch, Ray; about 6.5 GB) that
`nodes.install` builds from the wheelhouse at `.cache/venvs/cpu`; they skip where it is absent.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nodes.flavors import FLAVORS, REPO_ROOT

CPU_VENV_PYTHON = REPO_ROOT / ".cache" / "venvs" / "cpu" / "bin" / "python"

# The plugin's pure modules are tested on the controller, where it is not installed.
sys.path.insert(0, str(FLAVORS["cpu"].plugin / "src"))


@pytest.fixture
def cpu_venv_python() -> Path:
    if not CPU_VENV_PYTHON.exists():
        pytest.skip(f"no CPU node venv at {CPU_VENV_PYTHON.parent.parent}")
    return CPU_VENV_PYTHON


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
