"""Decide the layer split and context length before anything is deployed (runs at `preview`).

GPU clusters go through the capacity planner: with no `parallelism.layer_partition` in config
its uneven partition and context length are applied, and a model that does not fit stops the
run with needed vs available memory per GPU. CPU clusters (the lab) take the config as given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from stack.config import StackConfig
from stack.planner import ModelShape, PlanningError, plan
from stack.validation import ConfigError


@dataclass(frozen=True)
class ServingPlan:
    """What the stack decided beyond the config: the layer split and context length (planner)."""

    model_path: str
    layer_partition: list[int] | None
    max_model_len: int | None


def serving_plan(config: StackConfig, model_path: str) -> ServingPlan:
    """`model_path` is where the weights live on every node."""
    layout, settings = config.parallelism, config.vllm
    if config.accelerator != "nvidia":
        return ServingPlan(model_path, layout.layer_partition, settings.max_model_len)
    shape = ModelShape.from_config_json(_model_config(config))
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
    return ServingPlan(model_path, partition, decided.max_model_len)


def _model_config(config: StackConfig) -> dict:
    path = config.model.config_json or (config.model.path and config.model.path / "config.json")
    if path is None:
        raise ConfigError(["model.config_json: GPU stacks plan memory from the model's config.json; point it there"])
    return json.loads(path.read_text())
