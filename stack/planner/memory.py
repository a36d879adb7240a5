"""Bytes on one GPU of a layout: the arithmetic behind every plan, with each assumption named.

Units: bytes here; GiB (2**30 bytes) in plans. The "GB" users give (`--gpus 24,16`, a host's
`memory_gb`) is the card's nominal size, which is its size in GiB (an RTX 4090 "24 GB" has 24,564 MiB).

How vLLM spends a GPU, and so how this module counts it (vLLM's worker profiles one forward pass, then
gives the KV cache what is left of `gpu_memory_utilization` x the memory CUDA reports):
  budget   = nominal GiB x CUDA_VISIBLE_FRACTION x gpu_memory_utilization
  weights  = the stage's decoder layers (+ embedding on the first stage, + LM head on the last)
  overhead = RUNTIME_RESERVE_GIB + the profile pass's activation peak
  KV cache = budget - weights - overhead, in blocks of KV_BLOCK_TOKENS tokens
Tensor parallelism divides weights, activations and KV heads over the ranks of a stage.
Biases and norm vectors (O(hidden) per layer, under 0.2 % of a layer even for a 4-layer toy model) and
the CUDA context (it lives in the 1 - gpu_memory_utilization headroom) are not counted.
"""

from __future__ import annotations

import math

from stack.planner.shape import ModelShape, Quantization

GIB = 2**30

# vLLM's --dtype auto serves fp16/bf16 checkpoints as they are and downcasts fp32 ones to 16 bits; the
# KV cache (--kv-cache-dtype auto) follows. So unquantized weights and KV elements take 2 bytes.
SERVED_DTYPE_BYTES = 2
# AWQ/GPTQ keep, per group of `group_size` input rows of each output column, an fp16 scale and a zero
# point packed at the weights' own bit width (AWQ qzeros, GPTQ qzeros).
QUANT_SCALE_BYTES = 2
# FP8 weights take one byte; their per-tensor or 128x128-block scales are negligible.
FP8_BYTES = 1
# vLLM pads the vocabulary rows of the embedding and LM head to a multiple of 64.
VOCAB_PADDING = 64
# vLLM's default --block-size on CUDA: KV cache is handed out, and max_model_len checked, in 16-token blocks.
KV_BLOCK_TOKENS = 16
# CUDA reports about 2 % less than a card's nominal size (a "24 GB" RTX 3090 Ti: 24,112 MiB = 23.55 GiB),
# and vLLM's budget is a fraction of what CUDA reports.
CUDA_VISIBLE_FRACTION = 0.98
# ASSUMPTION, per GPU, inside the budget: memory outside weights, activations and KV cache. vLLM's logs on
# consumer cards show 0.1-0.3 GiB of non-torch allocations (NCCL, cuBLAS workspaces) and 0.1-0.6 GiB of
# CUDA graph pools; rounded up to leave room for allocator fragmentation.
RUNTIME_RESERVE_GIB = 1.0
# vLLM's profile pass runs max_num_batched_tokens tokens through the model and, on the last stage, samples
# max_num_seqs sequences. Its API server defaults are 2048 and 256 on cards under 70 GiB (the cards this
# planner is for); bigger cards default to 8192 tokens, whose larger activation peak such cards absorb.
PROFILE_BATCH_TOKENS = 2048
PROFILE_SEQUENCES = 256
# The MLP's activation peak: gate/up output (2 x intermediate per token) and the activated product
# (1 x intermediate) are alive together, in the served dtype.
MLP_PEAK_WIDTH = 3
# The sampler's peak: fp32 logits and fp32 probabilities (4 + 4 bytes) per vocabulary entry per sequence.
SAMPLER_BYTES_PER_LOGIT = 8


def budget_bytes(gpu_memory_gb: float, gpu_memory_utilization: float) -> int:
    """What vLLM may use on a card: the one --gpu-memory-utilization fraction of what CUDA reports."""
    return int(gpu_memory_gb * GIB * CUDA_VISIBLE_FRACTION * gpu_memory_utilization)


def linear_bytes_per_param(quantization: Quantization | None) -> float:
    """Bytes per linear-layer weight: bits / 8, plus a scale and a packed zero point per group."""
    if quantization is None:
        return SERVED_DTYPE_BYTES
    if quantization.method == "fp8":
        return FP8_BYTES
    weight = quantization.bits / 8
    if quantization.group_size is None:
        return weight
    return weight + (QUANT_SCALE_BYTES + weight) / quantization.group_size


def kv_heads_per_rank(shape: ModelShape, tensor_parallel_size: int) -> int:
    """With more ranks than KV heads vLLM replicates them, so a rank never holds less than one."""
    return max(1, shape.num_key_value_heads // tensor_parallel_size)


def decoder_layer_params(shape: ModelShape, tensor_parallel_size: int = 1) -> int:
    """Linear weights of one decoder layer on one tensor-parallel rank: q, k, v, o and gate, up, down."""
    q_width = shape.num_attention_heads // tensor_parallel_size * shape.head_dim
    kv_width = kv_heads_per_rank(shape, tensor_parallel_size) * shape.head_dim
    attention = shape.hidden_size * (q_width + 2 * kv_width) + q_width * shape.hidden_size
    mlp = 3 * shape.hidden_size * (shape.intermediate_size // tensor_parallel_size)
    return attention + mlp


def decoder_layer_bytes(shape: ModelShape, quantization: Quantization | None, tensor_parallel_size: int = 1) -> int:
    """Weight bytes of one decoder layer on one tensor-parallel rank."""
    return math.ceil(decoder_layer_params(shape, tensor_parallel_size) * linear_bytes_per_param(quantization))


def vocab_matrix_bytes(shape: ModelShape, tensor_parallel_size: int = 1) -> int:
    """The embedding, and the LM head, on one rank: padded vocabulary x hidden, 16-bit, split over ranks."""
    padded_vocab = math.ceil(shape.vocab_size / VOCAB_PADDING) * VOCAB_PADDING
    return math.ceil(padded_vocab / tensor_parallel_size) * shape.hidden_size * SERVED_DTYPE_BYTES


def stage_vocab_bytes(shape: ModelShape, stage: int, pipeline_parallel_size: int, tensor_parallel_size: int = 1) -> int:
    """Embedding on the first stage, LM head on the last.

    A tied LM head shares the embedding only when both sit on one stage; with pipeline parallelism the
    last stage loads its own copy.
    """
    last = pipeline_parallel_size - 1
    matrices = (stage == 0) + (stage == last and (last > 0 or not shape.tie_word_embeddings))
    return matrices * vocab_matrix_bytes(shape, tensor_parallel_size)


def kv_bytes_per_token(shape: ModelShape, tensor_parallel_size: int = 1) -> int:
    """KV cache for one token in one decoder layer on one rank: a key and a value per KV head."""
    return 2 * kv_heads_per_rank(shape, tensor_parallel_size) * shape.head_dim * SERVED_DTYPE_BYTES


def runtime_overhead_bytes(shape: ModelShape, tensor_parallel_size: int = 1, *, last_stage: bool) -> int:
    """The reserve plus the profile pass's activation peak; the last stage's peak may be its sampler's."""
    mlp = PROFILE_BATCH_TOKENS * MLP_PEAK_WIDTH * (shape.intermediate_size // tensor_parallel_size) * SERVED_DTYPE_BYTES
    sampler = PROFILE_SEQUENCES * shape.vocab_size * SAMPLER_BYTES_PER_LOGIT if last_stage else 0
    return int(RUNTIME_RESERVE_GIB * GIB) + max(mlp, sampler)
