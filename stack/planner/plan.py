"""Choose, or check, a vLLM layout for a model on a list of GPUs.

GPU order is pipeline-stage order: the head's GPUs first, then each worker's, as the stack lists hosts.
Stage s runs on GPUs s*tp .. s*tp+tp-1.

Layout rule when the caller gives none:
  1. the model on the head's first GPU alone, if that reaches the target context (no pipeline hops);
  2. else the fewest leading hosts that reach it, pipeline size = their GPU count / tensor size;
     tensor parallelism only within hosts (tensor size divides every used host's GPU count, so one
     host of several GPUs gets tensor size = its GPUs; a tensor group of unequal cards runs at the
     smallest one's budget); where several tensor sizes reach the target, the largest wins
     (intra-host tensor parallelism costs less latency than extra pipeline stages);
  3. if no layout reaches the target, the one with the most KV-cache tokens; if none fits at all, the
     one closest to fitting, so that its shortfall can be shown.
The target context is the requested max_model_len, else the model's max_position_embeddings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from stack.planner.errors import PlanningError
from stack.planner.memory import (
    CUDA_VISIBLE_FRACTION,
    GIB,
    KV_BLOCK_TOKENS,
    budget_bytes,
    decoder_layer_bytes,
    kv_bytes_per_token,
    runtime_overhead_bytes,
    stage_vocab_bytes,
)
from stack.planner.shape import ModelShape, Quantization, resolve_quantization

# Digits kept for GiB values and fractions in plans: MiB resolution is plenty for a fit decision's report.
REPORT_DIGITS = 3


class GpuPlan(BaseModel):
    """One GPU of a plan, in GiB.

    kv_cache_gb is what this GPU's stage needs to hold the plan's KV-cache tokens (when the plan does
    not fit: the tokens it asked for), so total_gb is the memory the plan needs on this card. vLLM still
    reserves the whole budget on every card: all stages keep as many blocks as the smallest one can, and
    what a roomier stage has beyond that stays idle.
    """

    model_config = ConfigDict(frozen=True)

    stage: int
    gpu_memory_gb: float
    layers: int
    weights_gb: float
    overhead_gb: float
    kv_cache_gb: float
    total_gb: float
    budget_gb: float
    utilization: float  # total_gb / gpu_memory_gb


class CapacityPlan(BaseModel):
    """A layout, whether it fits, and what it puts on each GPU; dumps to the CLI's --json document."""

    model_config = ConfigDict(frozen=True)

    fits: bool
    pipeline_parallel_size: int
    tensor_parallel_size: int
    layer_partition: list[int]
    # The context checked (when asked for) or the largest that fits, at most max_position_embeddings;
    # 0 when not even one KV block fits.
    max_model_len: int
    # Tokens the KV cache holds across all sequences: the smallest stage's share.
    kv_cache_tokens: int
    gpu_memory_utilization: float
    quantization: str
    per_gpu: list[GpuPlan]

    def vllm_settings(self) -> tuple[dict[str, str], list[str]]:
        """The environment and `vllm serve` flags that apply this plan."""
        return vllm_layout_settings(
            self.pipeline_parallel_size, self.tensor_parallel_size, self.layer_partition, self.max_model_len,
            self.gpu_memory_utilization,
        )  # fmt: skip

    def table(self) -> str:
        """A readable report: the verdict, one row per GPU, and the vLLM settings (or the shortfall)."""
        layout = (
            f"pipeline {self.pipeline_parallel_size} x tensor {self.tensor_parallel_size} "
            f"on {len(self.per_gpu)} GPU(s), layers {','.join(map(str, self.layer_partition))}"
        )
        if self.fits:
            verdict = (
                f"fits: {layout}, max_model_len {self.max_model_len} "
                f"(the KV cache holds {self.kv_cache_tokens:,} tokens)"
            )
        else:
            verdict = f"does not fit; closest layout: {layout}"
        header = ("GPU", "stage", "card GB", "layers", "weights", "runtime", "KV cache", "total", "budget", "used")
        rows = [
            (
                str(index),
                str(gpu.stage),
                f"{gpu.gpu_memory_gb:g}",
                str(gpu.layers),
                *(f"{value:.2f}" for value in (gpu.weights_gb, gpu.overhead_gb, gpu.kv_cache_gb, gpu.total_gb)),
                f"{gpu.budget_gb:.2f}",
                f"{gpu.utilization:.0%}",
            )
            for index, gpu in enumerate(self.per_gpu)
        ]
        widths = [max(len(row[column]) for row in (header, *rows)) for column in range(len(header))]
        lines = [verdict, ""]
        lines += ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in (header, *rows)]
        lines += [
            "",
            f"GiB; budget = card x {CUDA_VISIBLE_FRACTION} (what CUDA reports) x {self.gpu_memory_utilization} "
            "gpu_memory_utilization; used = total / card",
        ]
        if self.fits:
            environment, flags = self.vllm_settings()
            lines.append("vLLM: " + " ".join([*(f"{key}={value}" for key, value in environment.items()), *flags]))
        else:
            lines.append(self.shortfall_message())
        return "\n".join(lines)

    def shortfall_message(self) -> str:
        """Needed vs available on each GPU, and what to change; empty when the plan fits."""
        if self.fits:
            return ""
        tokens = max(self.max_model_len, KV_BLOCK_TOKENS)
        lines = [f"the model does not fit ({self.quantization}, KV cache for {tokens} tokens):"]
        for index, gpu in enumerate(self.per_gpu):
            short = gpu.total_gb - gpu.budget_gb
            verdict = f"short {short:.2f} GiB" if short > 0 else "enough"
            lines.append(
                f"  GPU {index} ({gpu.gpu_memory_gb:g} GB, stage {gpu.stage}, {gpu.layers} layers): "
                f"needs {gpu.total_gb:.2f} GiB (weights {gpu.weights_gb:.2f} + runtime {gpu.overhead_gb:.2f} "
                f"+ KV cache {gpu.kv_cache_gb:.2f}), has {gpu.budget_gb:.2f} GiB: {verdict}"
            )
        if self.kv_cache_tokens >= KV_BLOCK_TOKENS:
            lines.append(f"fix: lower max_model_len to {self.kv_cache_tokens} or less, or add GPUs")
        else:
            lines.append("fix: add GPUs or hosts, quantize further, or raise gpu_memory_utilization")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Layout:
    pipeline: int
    tensor: int
    gpus: tuple[float, ...]  # pipeline x tensor cards, stage-major


def plan(
    shape: ModelShape,
    gpu_memory_gb: list[float],
    *,
    quantization: str | None = None,
    max_model_len: int | None = None,
    gpu_memory_utilization: float = 0.9,
    pipeline_parallel_size: int | None = None,
    tensor_parallel_size: int | None = None,
    layer_partition: list[int] | None = None,
    gpus_per_host: list[int] | None = None,
) -> CapacityPlan:
    """Check the given layout, or recommend one (see the module docstring), for `shape` on these GPUs.

    gpu_memory_gb lists every GPU in stage order (nominal GB each); gpus_per_host groups them by host
    (default: one GPU per host) so that recommended tensor parallelism stays within hosts. quantization
    is one of QUANTIZATION_CHOICES, or None for what config.json says.
    """
    _check_request(shape, gpu_memory_gb, max_model_len, gpu_memory_utilization, gpus_per_host)
    weights_format = resolve_quantization(shape, quantization)
    if (pipeline_parallel_size, tensor_parallel_size, layer_partition) != (None, None, None):
        layout = _requested_layout(
            shape, weights_format, gpu_memory_gb, pipeline_parallel_size, tensor_parallel_size, layer_partition
        )
        return _evaluate(shape, weights_format, layout, layer_partition, gpu_memory_utilization, max_model_len)
    layouts = _candidate_layouts(shape, weights_format, gpu_memory_gb, gpus_per_host or [1] * len(gpu_memory_gb))
    plans = [
        _evaluate(shape, weights_format, layout, None, gpu_memory_utilization, max_model_len) for layout in layouts
    ]
    target = max_model_len or shape.max_position_embeddings
    return max(plans, key=lambda candidate: _preference(candidate, target))


def vllm_layout_settings(
    pipeline: int,
    tensor: int,
    layer_partition: list[int] | None,
    max_model_len: int | None,
    gpu_memory_utilization: float | None,
) -> tuple[dict[str, str], list[str]]:
    """The one rendering of a layout for vLLM: the environment (the uneven layer split) and the flags
    (parallel sizes, context length, memory share; the last two only when decided)."""
    environment = {}
    if pipeline > 1 and layer_partition is not None:
        environment["VLLM_PP_LAYER_PARTITION"] = ",".join(map(str, layer_partition))
    flags = [f"--pipeline-parallel-size={pipeline}", f"--tensor-parallel-size={tensor}"]
    if max_model_len is not None:
        flags.append(f"--max-model-len={max_model_len}")
    if gpu_memory_utilization is not None:
        flags.append(f"--gpu-memory-utilization={gpu_memory_utilization}")
    return environment, flags


def layout_size_problem(pipeline: int, tensor: int, devices: int, noun: str = "GPUs") -> str | None:
    """Why `pipeline` x `tensor` ranks cannot cover `devices`, or None. Shared with the stack's validation."""
    if pipeline * tensor == devices:
        return None
    return (
        f"pipeline size {pipeline} x tensor size {tensor} = {pipeline * tensor} {noun}, but {devices} {noun} "
        f"were given; choose sizes whose product is {devices}"
    )


def partition_problems(partition: list[int], pipeline: int, layers: int | None) -> list[str]:
    """What is wrong with a layer partition for `pipeline` stages of a model of `layers` layers (None:
    not known yet). Shared with the stack's validation, which reports every problem at once."""
    if not partition:
        return ["is empty; give one layer count per pipeline stage"]
    problems = []
    if len(partition) != pipeline:
        problems.append(f"has {len(partition)} entries for {pipeline} pipeline stages; give one layer count per stage")
    if min(partition) < 1:
        problems.append(f"{partition} leaves a stage without layers; give every stage 1 or more")
    if layers is not None and sum(partition) != layers:
        problems.append(f"sums to {sum(partition)} but the model has {layers} layers; make the entries add up to {layers}")
    return problems


def tensor_parallel_problem(
    shape: ModelShape, quantization: Quantization | None, tensor_parallel_size: int
) -> str | None:
    """Why vLLM would refuse this tensor size for the model, or None."""
    tp, kv_heads = tensor_parallel_size, shape.num_key_value_heads
    if shape.num_attention_heads % tp:
        return f"{shape.num_attention_heads} attention heads do not divide over {tp} ranks"
    if kv_heads % tp and tp % kv_heads:
        return f"{kv_heads} KV heads neither divide over nor replicate across {tp} ranks"
    if shape.intermediate_size % tp:
        return f"intermediate_size {shape.intermediate_size} does not divide over {tp} ranks"
    group = quantization.group_size if quantization else None
    # Row-parallel layers (o_proj, down_proj) split their input rows; each rank needs whole quantization groups.
    row_parallel = {
        "intermediate_size": shape.intermediate_size,
        "attention width": shape.num_attention_heads * shape.head_dim,
    }
    for name, rows in row_parallel.items():
        if group and (rows // tp) % group:
            return f"{name} {rows} / {tp} ranks is not a multiple of the quantization group size {group}"
    return None


def balanced_partition(
    free_bytes: list[int], layer_bytes: int, kv_layer_bytes: int, layers: int, required_tokens: int
) -> list[int]:
    """Layers per stage that maximize the smallest stage's KV-cache tokens; every stage gets one at least.

    free_bytes is each stage's budget after its fixed costs (embedding, LM head, runtime overhead), so
    the result gives stages layers in proportion to that free memory, rounded the way that helps the
    smallest KV cache most. Greedy is exact: a stage's tokens only fall as it takes layers, so handing
    each next layer to the stage that keeps the most tokens after taking it maximizes the minimum (an
    exchange argument). If some stage cannot even hold its fixed costs nothing fits, and the layers go
    where the bytes missing for `required_tokens` stay smallest, so the shortfall shown is the least.
    """
    if len(free_bytes) > layers:
        raise PlanningError(
            "pipeline_parallel_size", f"{len(free_bytes)} stages for {layers} layers; every stage needs a layer"
        )
    if min(free_bytes) > 0:

        def after_one_more(stage: int, count: int) -> float:
            return (free_bytes[stage] - count * layer_bytes) / (count * kv_layer_bytes)  # KV tokens left

    else:

        def after_one_more(stage: int, count: int) -> float:
            return free_bytes[stage] - count * (layer_bytes + required_tokens * kv_layer_bytes)  # bytes left

    counts = [1] * len(free_bytes)
    for _ in range(layers - len(free_bytes)):
        stage = max(range(len(counts)), key=lambda s: after_one_more(s, counts[s] + 1))
        counts[stage] += 1
    return counts


def _check_request(
    shape: ModelShape,
    gpu_memory_gb: list[float],
    max_model_len: int | None,
    gpu_memory_utilization: float,
    gpus_per_host: list[int] | None,
) -> None:
    if not gpu_memory_gb:
        raise PlanningError("gpu_memory_gb", "no GPUs given; list each GPU's memory in GB, the head's first")
    for index, memory in enumerate(gpu_memory_gb):
        if not memory > 0:
            raise PlanningError("gpu_memory_gb", f"GPU {index} has {memory} GB; give each card's memory, e.g. 24")
    if not 0 < gpu_memory_utilization <= 1:
        raise PlanningError(
            "gpu_memory_utilization", f"{gpu_memory_utilization} is not a fraction in (0, 1]; use e.g. 0.9"
        )
    if max_model_len is not None and max_model_len < 1:
        raise PlanningError("max_model_len", f"{max_model_len} is not a context length; give a positive token count")
    limit = shape.max_position_embeddings
    if max_model_len is not None and limit is not None and max_model_len > limit:
        raise PlanningError(
            "max_model_len",
            f"{max_model_len} exceeds the model's max_position_embeddings {limit}; use {limit} or less",
        )
    count = len(gpu_memory_gb)
    if gpus_per_host is not None and (sum(gpus_per_host) != count or min(gpus_per_host, default=0) < 1):
        raise PlanningError(
            "gpus_per_host",
            f"{gpus_per_host} does not group {count} GPUs; give each host's GPU count (1 or more), summing to {count}",
        )


def _requested_layout(
    shape: ModelShape,
    quantization: Quantization | None,
    gpus: list[float],
    pipeline: int | None,
    tensor: int | None,
    partition: list[int] | None,
) -> _Layout:
    """The caller's layout, a missing size derived from the GPU count; else a PlanningError saying what to change."""
    count, layers = len(gpus), shape.num_hidden_layers
    for field, size in (("pipeline_parallel_size", pipeline), ("tensor_parallel_size", tensor)):
        if size is not None and size < 1:
            raise PlanningError(field, f"{size} is not a size; give 1 or more")
    if partition is not None and not partition:
        raise PlanningError("layer_partition", partition_problems(partition, 0, None)[0])
    # Blame the input the pipeline size came from.
    stages_from = "pipeline_parallel_size" if pipeline else "layer_partition" if partition else "tensor_parallel_size"
    if pipeline is None:
        pipeline = len(partition) if partition is not None else max(1, count // tensor)
    if tensor is None:
        tensor = max(1, count // pipeline)
    if size_problem := layout_size_problem(pipeline, tensor, count):
        raise PlanningError(stages_from, size_problem)
    if pipeline > layers:
        raise PlanningError(
            stages_from,
            f"{pipeline} stages for a model of {layers} layers; use at most {layers} stages, every stage needs a layer",
        )
    problem = tensor_parallel_problem(shape, quantization, tensor)
    if problem:
        raise PlanningError("tensor_parallel_size", f"{tensor} does not fit the model: {problem}; choose another size")
    if partition is not None and (problems := partition_problems(partition, pipeline, layers)):
        raise PlanningError("layer_partition", problems[0])
    return _Layout(pipeline, tensor, tuple(gpus))


def _candidate_layouts(
    shape: ModelShape, quantization: Quantization | None, gpus: list[float], gpus_per_host: list[int]
) -> list[_Layout]:
    """The head's first GPU alone, then every leading run of hosts with every tensor size allowed there."""
    layouts = [_Layout(1, 1, (gpus[0],))]
    used = 0
    for hosts, host_gpus in enumerate(gpus_per_host, start=1):
        used += host_gpus
        common = math.gcd(*gpus_per_host[:hosts])
        for tensor in (size for size in range(1, common + 1) if common % size == 0):
            layout = _Layout(used // tensor, tensor, tuple(gpus[:used]))
            allowed = not tensor_parallel_problem(shape, quantization, tensor)
            if allowed and layout.pipeline <= shape.num_hidden_layers and layout not in layouts:
                layouts.append(layout)
    return layouts


def _evaluate(
    shape: ModelShape,
    quantization: Quantization | None,
    layout: _Layout,
    partition: list[int] | None,
    utilization: float,
    max_model_len: int | None,
) -> CapacityPlan:
    """Fill in the partition (if not given), the KV-cache tokens and each GPU's bytes for one layout."""
    pp, tp = layout.pipeline, layout.tensor
    last = pp - 1
    layer = decoder_layer_bytes(shape, quantization, tp)
    kv_layer = kv_bytes_per_token(shape, tp)
    budgets = [budget_bytes(memory, utilization) for memory in layout.gpus]
    vocab = [stage_vocab_bytes(shape, stage, pp, tp) for stage in range(pp)]
    overhead = [runtime_overhead_bytes(shape, tp, last_stage=stage == last) for stage in range(pp)]
    # A stage runs at its smallest card's budget: vLLM gives every rank the same number of KV blocks.
    free = [min(budgets[stage * tp : stage * tp + tp]) - vocab[stage] - overhead[stage] for stage in range(pp)]
    required = max_model_len or KV_BLOCK_TOKENS
    partition = partition or balanced_partition(free, layer, kv_layer, shape.num_hidden_layers, required)
    blocks = min((free[s] - n * layer) // (KV_BLOCK_TOKENS * n * kv_layer) for s, n in enumerate(partition))
    kv_tokens = max(0, blocks) * KV_BLOCK_TOKENS
    fits = kv_tokens >= required
    if max_model_len is None:
        context = min(kv_tokens, shape.max_position_embeddings or kv_tokens)
        max_model_len = context - context % KV_BLOCK_TOKENS
    shown_tokens = max(kv_tokens, required)

    def gib(value: int) -> float:
        return round(value / GIB, REPORT_DIGITS)

    per_gpu = []
    for index, memory in enumerate(layout.gpus):
        stage = index // tp
        layers = partition[stage]
        weights = layers * layer + vocab[stage]
        kv_cache = shown_tokens * layers * kv_layer
        total = weights + overhead[stage] + kv_cache
        per_gpu.append(
            GpuPlan(
                stage=stage,
                gpu_memory_gb=memory,
                layers=layers,
                weights_gb=gib(weights),
                overhead_gb=gib(overhead[stage]),
                kv_cache_gb=gib(kv_cache),
                total_gb=gib(total),
                budget_gb=gib(budgets[index]),
                utilization=round(total / (memory * GIB), REPORT_DIGITS),
            )
        )
    return CapacityPlan(
        fits=fits,
        pipeline_parallel_size=pp,
        tensor_parallel_size=tp,
        layer_partition=list(partition),
        max_model_len=max_model_len,
        kv_cache_tokens=kv_tokens,
        gpu_memory_utilization=utilization,
        quantization=quantization.label if quantization else "none",
        per_gpu=per_gpu,
    )


def _preference(candidate: CapacityPlan, target: int | None) -> tuple:
    """Sort key of the layout rule in the module docstring; the largest wins."""
    gpus = len(candidate.per_gpu)
    if candidate.fits and target is not None and candidate.kv_cache_tokens >= target:
        return (2, -gpus, candidate.tensor_parallel_size)
    if candidate.fits:
        return (1, candidate.kv_cache_tokens, -gpus, candidate.tensor_parallel_size)
    return (0, -max(gpu.total_gb - gpu.budget_gb for gpu in candidate.per_gpu))
