"""Shared paths and shapes for the planner tests (pure arithmetic: no engine, no GPUs)."""

from pathlib import Path

import pytest

from artifacts.paths import REPO_ROOT
from stack.planner import ModelShape

CONFIGS = REPO_ROOT / "models" / "configs"


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def tiny_path() -> Path:
    return CONFIGS / "tiny-qwen2" / "config.json"


@pytest.fixture
def qwen32b_path() -> Path:
    return CONFIGS / "Qwen2.5-32B-Instruct-AWQ" / "config.json"


@pytest.fixture
def tiny(tiny_path: Path) -> ModelShape:
    """4 layers, hidden 256, 4 heads / 2 KV heads of 64, intermediate 512, vocab 4096, tied, bf16."""
    return ModelShape.from_config_json(tiny_path)


@pytest.fixture
def qwen32b(qwen32b_path: Path) -> ModelShape:
    """64 layers, hidden 5120, 40 heads / 8 KV heads of 128, intermediate 27648, vocab 152064, untied, AWQ."""
    return ModelShape.from_config_json(qwen32b_path)
