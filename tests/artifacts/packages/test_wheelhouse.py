import hashlib
from pathlib import PurePosixPath

import pytest

from artifacts.packages.flavors import get_flavor
from artifacts.packages.wheelhouse import check_wheels, pip_download_command, wheelhouse_path
from tests.artifacts.install import install_commands


def write_lock(folder, wheels: dict[str, bytes]) -> None:
    lines = []
    for filename, content in wheels.items():
        name, version = filename.split("-")[:2]
        digest = hashlib.sha256(content).hexdigest()
        lines.append(f"{name}=={version} \\\n    --hash=sha256:{digest}")
    (folder / "requirements.lock").write_text("\n".join(lines) + "\n")


def test_check_wheels_accepts_one_matching_wheel_per_package(tmp_path):
    wheels = {"six-1.17.0-py3-none-any.whl": b"six", "Py_Yaml-6.0-cp311-cp311-x.whl": b"yaml"}
    write_lock(tmp_path, wheels)
    for filename, content in wheels.items():
        (tmp_path / filename).write_bytes(content)
    check_wheels(tmp_path / "requirements.lock", tmp_path)


def test_check_wheels_rejects_a_tampered_wheel(tmp_path):
    write_lock(tmp_path, {"six-1.17.0-py3-none-any.whl": b"six"})
    (tmp_path / "six-1.17.0-py3-none-any.whl").write_bytes(b"not six")
    with pytest.raises(RuntimeError, match="sha256"):
        check_wheels(tmp_path / "requirements.lock", tmp_path)


def test_check_wheels_rejects_a_missing_wheel(tmp_path):
    write_lock(tmp_path, {"six-1.17.0-py3-none-any.whl": b"six"})
    with pytest.raises(RuntimeError, match="no wheel"):
        check_wheels(tmp_path / "requirements.lock", tmp_path)


def test_downloads_target_the_nodes_interpreter_not_the_controllers(tmp_path):
    command = pip_download_command(["pip"], tmp_path / "requirements.lock", tmp_path)
    platforms = {command[i + 1] for i, arg in enumerate(command) if arg == "--platform"}
    abis = {command[i + 1] for i, arg in enumerate(command) if arg == "--abi"}
    assert {"manylinux_2_36_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"} <= platforms
    assert "manylinux_2_37_x86_64" not in platforms
    assert abis == {"cp311", "abi3", "none"}
    assert {"--require-hashes", "--no-deps", "--only-binary=:all:"} <= set(command)


def test_wheelhouse_folder_is_keyed_by_the_lock(tmp_path):
    path = wheelhouse_path(get_flavor("cpu"), tmp_path)
    name, digest = path.name.split("-")
    assert path.parent == tmp_path and name == "cpu" and len(digest) == 16


def test_install_is_offline_hash_checked_and_adds_the_plugin_without_deps():
    commands = install_commands(
        PurePosixPath("/opt/vllm venv"),
        PurePosixPath("/opt/wheelhouse"),
        PurePosixPath("plugins/p-1/p-0.1-py3-none-any.whl"),
    )
    assert commands == [
        "python3 -m venv '/opt/vllm venv'",
        "'/opt/vllm venv/bin/pip' install --no-index --find-links /opt/wheelhouse"
        " --require-hashes --no-deps --requirement /opt/wheelhouse/requirements.lock",
        "'/opt/vllm venv/bin/pip' install --no-index --no-deps"
        " /opt/wheelhouse/plugins/p-1/p-0.1-py3-none-any.whl",
    ]
