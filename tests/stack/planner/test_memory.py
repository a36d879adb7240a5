"""Byte arithmetic, checked by hand on the tiny model and the 32B AWQ model (the sums are in the comments)."""

import pytest

from stack.planner import (
    ModelShape,
    Quantization,
    budget_bytes,
    decoder_layer_bytes,
    kv_bytes_per_token,
    runtime_overhead_bytes,
    stage_vocab_bytes,
    vocab_matrix_bytes,
)
from stack.planner.memory import GIB, decoder_layer_params

AWQ_4BIT = Quantization(method="awq", bits=4, group_size=128)
GPTQ_8BIT = Quantization(method="gptq", bits=8, group_size=128)
FP8 = Quantization(method="fp8", bits=8, group_size=None)


@pytest.mark.parametrize(
    ("tensor_parallel_size", "params"),
    [
        # q 256x256 + k,v 2 x 256x128 + o 256x256 = 196,608; gate, up, down 3 x 256x512 = 393,216
        (1, 589_824),
        # per rank: q 256x128 + k,v 2 x 256x64 + o 128x256 = 98,304; MLP 3 x 256x256 = 196,608
        (2, 294_912),
        # 4 ranks > 2 KV heads: k,v replicated, 1 head each: q 256x64 + k,v 2 x 256x64 + o 64x256 = 65,536;
        # MLP 3 x 256x128 = 98,304; more than a quarter of 589,824
        (4, 163_840),
    ],
)
def test_decoder_layer_params_split_over_ranks(tiny: ModelShape, tensor_parallel_size: int, params: int) -> None:
    assert decoder_layer_params(tiny, tensor_parallel_size) == params


@pytest.mark.parametrize(
    ("quantization", "layer_bytes"),
    [
        (None, 1_179_648),  # 589,824 x 2 bytes
        (AWQ_4BIT, 306_432),  # 589,824 x (0.5 + (2 + 0.5) / 128) = 4,608 groups-of-128 x 66.5
        (GPTQ_8BIT, 603_648),  # 589,824 x (1 + (2 + 1) / 128) = 4,608 x 131
        (FP8, 589_824),  # 1 byte each
    ],
)
def test_decoder_layer_bytes_per_format(tiny: ModelShape, quantization: Quantization | None, layer_bytes: int) -> None:
    assert decoder_layer_bytes(tiny, quantization) == layer_bytes


def test_32b_awq_layer_matches_the_published_checkpoint_size(qwen32b: ModelShape) -> None:
    # q 5120x5120 + k,v 2 x 5120x1024 + o 5120x5120 = 62,914,560; MLP 3 x 5120x27648 = 424,673,280
    assert decoder_layer_params(qwen32b) == 487_587_840
    # 487,587,840 / 128 = 3,809,280 x 66.5 = 253,317,120
    layer = decoder_layer_bytes(qwen32b, AWQ_4BIT)
    assert layer == 253_317_120
    # 64 layers + untied embedding and LM head (152,064 x 5120 x 2 each) = 19.33e9 bytes: the
    # checkpoint's safetensors total about 19.3 GB.
    assert 64 * layer + 2 * vocab_matrix_bytes(qwen32b) == 19_326_566_400


def test_vocab_matrix_pads_to_64_rows_and_splits_over_ranks(tiny: ModelShape) -> None:
    assert vocab_matrix_bytes(tiny) == 2_097_152  # 4096 x 256 x 2
    odd = tiny.model_copy(update={"vocab_size": 4000})
    assert vocab_matrix_bytes(odd) == 2_064_384  # padded to 4032 rows: 4032 x 256 x 2
    assert vocab_matrix_bytes(odd, 2) == 1_032_192  # 2016 rows per rank


@pytest.mark.parametrize(("tensor_parallel_size", "per_token"), [(1, 512), (2, 256), (4, 256)])
def test_kv_bytes_per_token_per_layer(tiny: ModelShape, tensor_parallel_size: int, per_token: int) -> None:
    # key + value x KV heads on the rank x head_dim 64 x 2 bytes: 2 x 2 x 64 x 2 = 512; one head per rank
    # from tensor size 2 on (replicated beyond 2 ranks)
    assert kv_bytes_per_token(tiny, tensor_parallel_size) == per_token


def test_32b_kv_cache_is_256_kib_per_token(qwen32b: ModelShape) -> None:
    assert kv_bytes_per_token(qwen32b) * qwen32b.num_hidden_layers == 2 * 8 * 128 * 2 * 64 == 256 * 1024


def test_runtime_overhead_reserve_plus_activation_peak(tiny: ModelShape, qwen32b: ModelShape) -> None:
    # tiny: MLP peak 2048 tokens x 3 x 512 x 2 bytes = 6,291,456; the last stage's sampler peak
    # 256 sequences x 4096 x 8 bytes = 8,388,608 is larger there
    assert runtime_overhead_bytes(tiny, last_stage=False) == GIB + 6_291_456
    assert runtime_overhead_bytes(tiny, last_stage=True) == GIB + 8_388_608
    # 32B: MLP peak 2048 x 3 x 27,648 x 2 = 339,738,624 beats the sampler's 256 x 152,064 x 8 = 311,427,072
    assert runtime_overhead_bytes(qwen32b, last_stage=True) == GIB + 339_738_624
    assert runtime_overhead_bytes(qwen32b, 2, last_stage=False) == GIB + 339_738_624 // 2


@pytest.mark.parametrize(
    ("tied", "pipeline", "matrices"),
    [
        (True, 1, [1]),  # one stage: the LM head is the embedding
        (False, 1, [2]),
        (True, 2, [1, 1]),  # the last stage loads its own copy of a tied head
        (False, 3, [1, 0, 1]),  # middle stages hold neither
    ],
)
def test_embedding_on_first_stage_lm_head_on_last(
    tiny: ModelShape, tied: bool, pipeline: int, matrices: list[int]
) -> None:
    shape = tiny.model_copy(update={"tie_word_embeddings": tied})
    stages = [stage_vocab_bytes(shape, stage, pipeline) for stage in range(pipeline)]
    assert stages == [count * 2_097_152 for count in matrices]


def test_budget_is_utilization_of_what_cuda_reports() -> None:
    # 24 GiB x 0.98 x 0.9 = 21.168 GiB
    assert budget_bytes(24, 0.9) == pytest.approx(21.168 * GIB, abs=1)
    assert budget_bytes(16, 1.0) == pytest.approx(15.68 * GIB, abs=1)
