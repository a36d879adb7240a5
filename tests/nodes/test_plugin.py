import shutil
import subprocess
import tempfile
import time
import tomllib
from pathlib import Path

import pytest
from conftest import CPU_VENV_PYTHON, PLUGIN_SOURCE, requires_cpu_venv

import vllm_ray_cpu
from vllm_ray_cpu.shm_identity import local_shm_identity, ranks_share_shm

SAME_HOST = ("0b5e-boot", 27, 1)


def test_entry_point_is_declared_in_vllms_platform_plugin_group():
    project = tomllib.loads((PLUGIN_SOURCE / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["vllm.platform_plugins"] == {"ray_cpu": "vllm_ray_cpu:activate"}
    assert project["dependencies"] == []  # installed with --no-deps next to the node lock
    assert vllm_ray_cpu.RAY_RESOURCE == "cpu_stage"


@pytest.mark.parametrize(
    ("identities", "shared"),
    [
        ([SAME_HOST, SAME_HOST], True),
        ([SAME_HOST], True),
        ([SAME_HOST, ("other-boot", 27, 1)], False),  # another host (or a reboot)
        ([SAME_HOST, ("0b5e-boot", 28, 1)], False),  # same kernel, another /dev/shm mount
        ([SAME_HOST, ("0b5e-boot", 27, 2)], False),
        ([SAME_HOST, list(SAME_HOST)], True),  # all_gather_object may hand back lists
    ],
)
def test_ranks_share_shm_only_with_one_boot_and_one_shm_mount(identities, shared):
    assert ranks_share_shm(identities) is shared


def test_local_shm_identity_reads_boot_id_and_shm_mount(tmp_path):
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("1234-abcd\n")
    identity = local_shm_identity(str(boot_id), str(tmp_path))
    assert identity == ("1234-abcd", tmp_path.stat().st_dev, tmp_path.stat().st_ino)


def run_in_cpu_venv(code: str, *args: str) -> str:
    result = subprocess.run(
        [str(CPU_VENV_PYTHON), "-c", code, *args], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.slow
@requires_cpu_venv
def test_vllm_selects_the_plugin_platform():
    code = (
        "from vllm.platforms import current_platform as p;"
        "print(type(p).__name__, p.ray_device_key, p.is_cpu(),"
        " p.get_device_communicator_cls().rsplit('.', 1)[-1])"
    )
    assert run_in_cpu_venv(code) == "RayCpuPlatform cpu_stage True ShmAwareCpuCommunicator"


@pytest.mark.slow
@requires_cpu_venv
def test_ray_reports_ids_for_the_stage_resource():
    # Short and private: Ray's socket paths live under it, and /tmp/ray may belong to others.
    ray_temp = tempfile.mkdtemp(prefix="rt-", dir="/tmp")
    code = """
import sys
import ray
import vllm_ray_cpu.platform  # installs the patch, as vLLM's platform resolution does
ray.init(num_cpus=1, resources={"cpu_stage": 1}, include_dashboard=False, _temp_dir=sys.argv[1])

@ray.remote(num_cpus=0, resources={"cpu_stage": 1})
class Stage:
    def ids(self):
        import vllm_ray_cpu.platform
        return ray.get_runtime_context().get_accelerator_ids()["cpu_stage"]

print(ray.get(Stage.remote().ids.remote()))
ray.shutdown()
"""
    try:
        assert run_in_cpu_venv(code, ray_temp) == "['0']"
    finally:
        remove_when_writers_exit(Path(ray_temp))


def remove_when_writers_exit(folder: Path, attempts: int = 10) -> None:
    """Ray's helper processes may still write logs for a moment after the driver exits."""
    for _ in range(attempts):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return
        time.sleep(1)
