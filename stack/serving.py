"""Decide the layer split and context length before anything is deployed (runs at `preview`).

GPU clusters go through the capacity planner: with no `parallelism.layer_partition` in config
its uneven partition and context length are applied, and a model that does not fit stops the
run with needed vs available memory per GPU. CPU clusters (the lab) take the config as given.
"""

from __future__ import annotations

from dataclasses import dataclass

from stack.config import StackConfig
from stack.planner import CapacityPlan, ModelShape, PlanningError, plan
from stack.planner.plan import vllm_layout_settings
from stack.validation import ConfigError


@dataclass(frozen=True)
class ServingPlan:
    """What the stack decided beyond the config: the layer split and context length (planner)."""

    model_path: str
    layer_partition: list[int] | None
    max_model_len: int | None
    capacity: CapacityPlan | None = None
    """The planner's whole decision on GPU stacks (memory per GPU, needed vs budget), stated to
    reviewers and policies (`stack.disclosed`); None on CPU stacks, which take the config as given."""

    def vllm_layout(self, config: StackConfig) -> tuple[dict[str, str], list[str]]:
        """The layout's environment and flags, rendered by the planner's one renderer; the memory share
        only on GPUs (vLLM's CPU backend sizes its cache by VLLM_CPU_KVCACHE_SPACE)."""
        utilization = config.vllm.gpu_memory_utilization if config.accelerator == "nvidia" else None
        layout = config.parallelism
        return vllm_layout_settings(
            layout.pipeline_size, layout.tensor_size, self.layer_partition, self.max_model_len, utilization
        )


def serving_plan(config: StackConfig, model_path: str) -> ServingPlan:
    """`model_path` is where the weights live on every node."""
    layout, settings = config.parallelism, config.vllm
    if config.accelerator != "nvidia":
        return ServingPlan(model_path, layout.layer_partition, settings.max_model_len)
    if config.model.config_file is None:
        raise ConfigError(["model.config_json: GPU stacks plan memory from the model's config.json; point it there"])
    try:
        shape = ModelShape.from_config_json(config.model.config_file)
    except PlanningError as error:
        raise ConfigError([f"model.config_json: {error.message}"]) from None
    gpus = [gpu.memory_gb for host in config.hosts for gpu in host.gpus]
    try:
        decided = plan(
            shape, gpus,
            quantization=config.model.quantization,
            max_model_len=settings.max_model_len,
            gpu_memory_utilization=settings.gpu_memory_utilization,
            pipeline_parallel_size=layout.pipeline_size,
            tensor_parallel_size=layout.tensor_size,
            layer_partition=layout.layer_partition,
            gpus_per_host=[len(host.gpus) for host in config.hosts],
        )  # fmt: skip
    except PlanningError as error:
        raise ConfigError([f"parallelism: {error}"]) from None
    if not decided.fits:
        raise ConfigError([f"hosts[].gpus: {decided.shortfall_message()}"])
    partition = decided.layer_partition if layout.pipeline_size > 1 else None
    return ServingPlan(model_path, partition, decided.max_model_len, decided)

