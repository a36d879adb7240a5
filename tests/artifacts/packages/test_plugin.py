import shutil
import subprocess
import tempfile
import time
import tomllib
from pathlib import Path

import pytest
import vllm_ray_cpu
from vllm_ray_cpu.shm_identity import local_shm_identity, ranks_share_shm

from artifacts.packages.flavors import FLAVORS

SAME_HOST = ("0b5e-boot", 27, 1)


def test_entry_point_is_declared_in_vllms_platform_plugin_group():
    pyproject = FLAVORS["cpu"].plugin / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text())["project"]
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


@pytest.mark.slow
def test_vllm_selects_the_plugin_platform_and_worker(run_in_cpu_venv):
    code = """
from vllm.platforms import current_platform as p
from vllm.utils.import_utils import resolve_obj_by_qualname as resolve
from vllm_ray_cpu import platform
communicator = p.get_device_communicator_cls().rsplit(".", 1)[-1]
# The worker it swaps in must still derive from the one vLLM's CPU platform picks.
worker = issubclass(resolve(platform._PIPELINE_CPU_WORKER), resolve(platform._STOCK_CPU_WORKER))
print(type(p).__name__, p.ray_device_key, p.is_cpu(), communicator, worker)
"""
    expected = "RayCpuPlatform cpu_stage True ShmAwareCpuCommunicator True"
    assert run_in_cpu_venv(code) == expected


RAY_STAGE_IDS = """
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


@pytest.mark.slow
def test_ray_reports_ids_for_the_stage_resource(run_in_cpu_venv):
    # Short and private: Ray's socket paths live under it, and /tmp/ray may belong to others.
    ray_temp = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))
    try:
        assert run_in_cpu_venv(RAY_STAGE_IDS, str(ray_temp)) == "['0']"
    finally:
        remove_when_writers_exit(ray_temp)


def remove_when_writers_exit(folder: Path, attempts: int = 10) -> None:
    """Ray's helper processes may still write logs for a moment after the driver exits."""
    for _ in range(attempts):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return
        time.sleep(1)


COMMUNICATOR_RANK = """
import os, sys
import torch.distributed as dist
import vllm_ray_cpu.communicator as communicator

rank, init_file, other_host = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
os.environ["VLLM_DIST_IDENT"] = "test"
dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
if other_host and rank == 1:
    communicator.local_shm_identity = lambda: ("another-boot-id", 1, 1)
# Only the attributes the shm decision reads: a full communicator needs a vLLM engine.
group = object.__new__(communicator.ShmAwareCpuCommunicator)
group.world_size, group.ranks, group.unique_name = 2, [0, 1], "pp:0"
group.device_group = dist.group.WORLD
print(group._all_group_ranks_share_shm_group_name())
dist.destroy_process_group()
"""


@pytest.mark.slow
@pytest.mark.parametrize(("other_host", "shared"), [(False, "True"), (True, "False")])
def test_communicator_agrees_on_shm_across_a_real_gloo_group(
    cpu_venv_python, tmp_path, other_host, shared
):
    ranks = [
        subprocess.Popen(
            [
                str(cpu_venv_python),
                "-c",
                COMMUNICATOR_RANK,
                str(rank),
                str(tmp_path / "init"),
                "1" if other_host else "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [rank.communicate(timeout=300) for rank in ranks]
    for process, (stdout, stderr) in zip(ranks, outputs, strict=True):
        assert process.returncode == 0, stderr[-4000:]
        assert stdout.strip().splitlines()[-1] == shared  # every rank takes the same path
