"""Capacity planner: will a model fit these GPUs, with which vLLM layout, layer split and context length?

Plain arithmetic over a model's config.json and the cards' memory: no Pulumi engine, no torch. The stack
calls `plan()` at preview to apply (or reject, with `CapacityPlan.shortfall_message()`) a layout; people call
`python -m stack.planner` before they deploy. Assumptions are named in `memory.py`; the layout
rule is in `plan.py`.
"""

from stack.planner.errors import PlanningError
from stack.planner.memory import (
    budget_bytes,
    decoder_layer_bytes,
    kv_bytes_per_token,
    runtime_overhead_bytes,
    stage_vocab_bytes,
    vocab_matrix_bytes,
)
from stack.planner.plan import CapacityPlan, GpuPlan, balanced_partition, plan, tensor_parallel_problem
from stack.planner.shape import QUANTIZATION_CHOICES, ModelShape, Quantization, resolve_quantization

__all__ = [
    "QUANTIZATION_CHOICES",
    "GpuPlan",
    "ModelShape",
    "CapacityPlan",
    "PlanningError",
    "Quantization",
    "balanced_partition",
    "budget_bytes",
    "decoder_layer_bytes",
    "kv_bytes_per_token",
    "plan",
    "resolve_quantization",
    "runtime_overhead_bytes",
    "stage_vocab_bytes",
    "tensor_parallel_problem",
    "vocab_matrix_bytes",
]
