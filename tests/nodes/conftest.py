"""Shared paths for the node-software tests.

Tests marked `slow` run inside the CPU node venv (vLLM, torch, Ray; about 6.5 GB), built from
the wheelhouse by `nodes.install`; they skip where that venv is absent.
"""

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGIN_SOURCE = REPO_ROOT / "plugins" / "vllm-ray-cpu"
CPU_VENV_PYTHON = REPO_ROOT / ".cache" / "venvs" / "cpu" / "bin" / "python"

# The plugin's pure modules are tested on the controller, where it is not installed.
sys.path.insert(0, str(PLUGIN_SOURCE / "src"))

requires_cpu_venv = pytest.mark.skipif(
    not CPU_VENV_PYTHON.exists(), reason=f"no CPU node venv at {CPU_VENV_PYTHON.parent.parent}"
)
