"""vLLM's CPU platform, placed on Ray nodes through a custom resource."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vllm.platforms.cpu import CpuPlatform

from vllm_ray_cpu import RAY_RESOURCE
from vllm_ray_cpu.ray_resource_ids import report_stage_resource_ids

if TYPE_CHECKING:
    from vllm.config import VllmConfig

_STOCK_CPU_WORKER = "vllm.v1.worker.cpu_worker.CPUWorker"
_PIPELINE_CPU_WORKER = "vllm_ray_cpu.worker.PipelineCpuWorker"

# vLLM imports this module in every process that resolves its platform to ours, the Ray
# workers included, and they resolve it before they ask Ray for their resource ids.
report_stage_resource_ids()


class RayCpuPlatform(CpuPlatform):
    """Stock CpuPlatform has `ray_device_key = ""`, which vLLM reads as "no Ray support"."""

    ray_device_key: str = RAY_RESOURCE

    @classmethod
    def get_device_communicator_cls(cls) -> str:
        return "vllm_ray_cpu.communicator.ShmAwareCpuCommunicator"

    @classmethod
    def check_and_update_config(cls, vllm_config: VllmConfig) -> None:
        super().check_and_update_config(vllm_config)
        parallel = vllm_config.parallel_config
        if parallel.worker_cls == _STOCK_CPU_WORKER:  # the base class just chose it
            parallel.worker_cls = _PIPELINE_CPU_WORKER
