"""Shared fixtures: a valid stack config as raw data, the way `Pulumi.<stack>.yaml` gives it."""

from pathlib import Path

import pytest

from lab.fixtures import lab_hosts  # noqa: F401  (one lab per test session, shared by every folder)

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def ssh_key(tmp_path: Path) -> Path:
    key = tmp_path / "id_ed25519"
    key.write_text("not a real key; validation only checks that the file exists\n")
    return key


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    model = tmp_path / "tiny-model"
    model.mkdir()
    (model / "config.json").write_text('{"num_hidden_layers": 4}')
    return model


@pytest.fixture
def raw_config(ssh_key: Path, model_dir: Path) -> dict:
    """Two CPU hosts, pipeline parallelism 2: the lab's shape."""

    def host(name: str, address: str, role: str) -> dict:
        ssh = {"user": "root", "port": 22, "key_file": str(ssh_key)}
        return {"name": name, "address": address, "ssh": ssh, "role": role, "accelerator": "cpu"}

    return {
        "hosts": [host("lab1", "10.201.0.11", "head"), host("lab2", "10.201.0.12", "worker")],
        "model": {"path": str(model_dir), "served_name": "tiny"},
        "parallelism": {"pipeline_size": 2},
    }
