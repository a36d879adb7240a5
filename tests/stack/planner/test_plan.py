"""Plans: hand-checked fits, partition invariants, monotonicity, first/last stages, impossible requests."""

import itertools

import pytest

from stack.planner import CapacityPlan, ModelShape, PlanningError, balanced_partition, plan
from stack.planner.memory import GIB

# 32B AWQ on a 24 GB and a 16 GB card, worked by hand (test_memory checks each unit):
#   budgets: int(24 GiB x 0.98 x 0.9) = 22,728,966,930; int(16 GiB x 0.98 x 0.9) = 15,152,644,620
#   fixed per stage: vocabulary matrix 1,557,135,360 (embedding / LM head) + overhead 1,413,480,448
#   free: stage 0 19,758,351,122; stage 1 12,182,028,812; one layer 253,317,120; KV 4,096 / token / layer
#   40,24: stage 0 (19,758,351,122 - 40 x 253,317,120) // (16 x 40 x 4096) = 3,671 blocks
#          stage 1 (12,182,028,812 - 24 x 253,317,120) // (16 x 24 x 4096) = 3,879 blocks
#   39,25 gives stage 1 3,570 blocks; 41,23 gives stage 0 3,488: 40,24 is best, 3,671 x 16 = 58,736 tokens.
QWEN_24_16_TOKENS = 58_736


def test_32b_awq_on_24_and_16_splits_unevenly(qwen32b: ModelShape) -> None:
    result = plan(qwen32b, [24, 16])
    assert result.fits
    assert (result.pipeline_parallel_size, result.tensor_parallel_size) == (2, 1)
    assert result.layer_partition == [40, 24]
    assert result.kv_cache_tokens == QWEN_24_16_TOKENS
    assert result.max_model_len == 32768  # capped by max_position_embeddings
    first, last = result.per_gpu
    # 40 x 253,317,120 + 1,557,135,360 = 11,689,819,840 bytes = 10.887 GiB
    assert first.weights_gb == 10.887
    # 58,736 tokens x 40 layers x 4096 = 9,623,306,240 bytes = 8.962 GiB
    assert first.kv_cache_gb == 8.962
    assert first.overhead_gb == last.overhead_gb == 1.316  # 1 GiB + 339,738,624 bytes
    assert last.total_gb <= last.budget_gb and first.total_gb <= first.budget_gb


def test_the_even_split_caps_the_context(qwen32b: ModelShape) -> None:
    # 32,32: stage 1 (12,182,028,812 - 32 x 253,317,120) // (16 x 32 x 4096) = 1,943 blocks = 31,088 tokens,
    # below the model's 32,768: the 16 GB card's KV cache limits everyone.
    even = plan(qwen32b, [24, 16], layer_partition=[32, 32])
    assert even.fits
    assert even.kv_cache_tokens == even.max_model_len == 31_088
    with_32k = plan(qwen32b, [24, 16], layer_partition=[32, 32], max_model_len=32768)
    assert not with_32k.fits
    assert "lower max_model_len to 31088 or less" in with_32k.shortfall_message()


def test_hand_checked_single_gpu_plan(tiny: ModelShape) -> None:
    # 2 GB card at utilization 1.0: int(2 GiB x 0.98) = 2,104,533,975
    # - tied embedding 2,097,152 - overhead (last stage: sampler) 1,082,130,432 - 4 layers x 1,179,648
    # = 1,015,587,799 // (16 tokens x 4 layers x 512) = 30,993 blocks = 495,888 tokens
    result = plan(tiny, [2], gpu_memory_utilization=1.0)
    assert result.fits
    assert (result.pipeline_parallel_size, result.layer_partition) == (1, [4])
    assert result.kv_cache_tokens == 495_888
    assert result.max_model_len == 2048


def test_fits_on_one_gpu_when_it_reaches_the_context(tiny: ModelShape, qwen32b: ModelShape) -> None:
    assert len(plan(tiny, [24, 16]).per_gpu) == 1
    # 32B alone on the 24 GB card holds 7,584 tokens: enough for 4096, not for the model's 32,768.
    assert plan(qwen32b, [24, 16], max_model_len=4096).pipeline_parallel_size == 1
    assert plan(qwen32b, [24]).max_model_len == 7584
    assert plan(qwen32b, [24, 16]).pipeline_parallel_size == 2


def test_the_bigger_card_gets_more_layers_in_either_order(qwen32b: ModelShape) -> None:
    assert plan(qwen32b, [16, 24]).layer_partition == [24, 40]


def test_tensor_parallel_within_a_host_of_equal_gpus(qwen32b: ModelShape) -> None:
    result = plan(qwen32b, [24, 24, 16], gpus_per_host=[2, 1])
    assert (result.pipeline_parallel_size, result.tensor_parallel_size, len(result.per_gpu)) == (1, 2, 2)
    # one GPU per host: never tensor parallel across hosts
    assert plan(qwen32b, [12, 12, 12]).tensor_parallel_size == 1


def test_too_small_shows_needed_vs_available(qwen32b: ModelShape) -> None:
    result = plan(qwen32b, [16])
    assert not result.fits
    assert result.max_model_len == 0
    message = result.shortfall_message()
    # needs 64 x 253,317,120 + 2 x 1,557,135,360 + 1,413,480,448 + KV for one 16-token block = 19.32 GiB
    assert "GPU 0 (16 GB, stage 0, 64 layers): needs 19.32 GiB" in message
    assert "has 14.11 GiB: short 5.21 GiB" in message
    assert "add GPUs" in message
    assert plan(qwen32b, [24, 16]).shortfall_message() == ""


def test_first_and_last_stage_accounting(tiny: ModelShape) -> None:
    result = plan(tiny, [24, 24, 24], layer_partition=[1, 2, 1])
    first, middle, last = (gpu.weights_gb * GIB for gpu in result.per_gpu)
    layer, matrix = 1_179_648, 2_097_152  # one bf16 layer; the 4096 x 256 vocabulary matrix
    assert first == pytest.approx(layer + matrix, abs=GIB / 1000)  # + embedding
    assert middle == pytest.approx(2 * layer, abs=GIB / 1000)  # neither
    assert last == pytest.approx(layer + matrix, abs=GIB / 1000)  # + its own copy of the tied LM head
    assert result.per_gpu[2].overhead_gb > result.per_gpu[0].overhead_gb  # the sampler's peak


def _partitions(layers: int, stages: int) -> list[list[int]]:
    """Every way to give each stage at least one layer."""
    cuts = itertools.combinations(range(1, layers), stages - 1)
    return [[b - a for a, b in zip((0, *cut), (*cut, layers))] for cut in cuts]


@pytest.mark.parametrize("free", [[900, 500], [700, 700, 300], [1000, 200, 600], [400, 400, 400, 100]])
def test_greedy_partition_matches_exhaustive_search(free: list[int]) -> None:
    layers, layer_bytes, kv_bytes = 12, 30, 1

    def smallest_tokens(partition: list[int]) -> float:
        return min((f - n * layer_bytes) / (n * kv_bytes) for f, n in zip(free, partition))

    best = max(smallest_tokens(p) for p in _partitions(layers, len(free)))
    assert smallest_tokens(balanced_partition(free, layer_bytes, kv_bytes, layers, 16)) == best


MEMORY_GRID = [8, 12, 16, 20, 24, 32, 40, 48]


@pytest.mark.parametrize("max_model_len", [None, 8192, 32768])
def test_more_memory_never_turns_fit_into_no_fit(qwen32b: ModelShape, max_model_len: int | None) -> None:
    for first, second in itertools.product(MEMORY_GRID, repeat=2):
        if plan(qwen32b, [first, second], max_model_len=max_model_len).fits:
            for more_first, more_second in ((first + 4, second), (first, second + 4)):
                bigger = plan(qwen32b, [more_first, more_second], max_model_len=max_model_len)
                assert bigger.fits, (first, second, "->", more_first, more_second)
                assert bigger.max_model_len >= plan(qwen32b, [first, second], max_model_len=max_model_len).max_model_len


def _check_invariants(result: CapacityPlan, shape: ModelShape, gpus: int) -> None:
    assert sum(result.layer_partition) == shape.num_hidden_layers
    assert len(result.layer_partition) == result.pipeline_parallel_size
    assert min(result.layer_partition) >= 1
    assert len(result.per_gpu) == result.pipeline_parallel_size * result.tensor_parallel_size <= gpus
    assert [gpu.stage for gpu in result.per_gpu] == sorted(gpu.stage for gpu in result.per_gpu)
    assert result.max_model_len % 16 == 0


def test_partition_invariants_over_a_grid(qwen32b: ModelShape, tiny: ModelShape) -> None:
    for shape in (qwen32b, tiny):
        for gpus in itertools.chain.from_iterable(itertools.product(MEMORY_GRID[:5], repeat=n) for n in (1, 2, 3)):
            _check_invariants(plan(shape, list(gpus)), shape, len(gpus))
            if len(gpus) <= shape.num_hidden_layers:
                _check_invariants(plan(shape, list(gpus), pipeline_parallel_size=len(gpus)), shape, len(gpus))


@pytest.mark.parametrize(
    ("gpus", "arguments", "field", "message"),
    [
        ([24] * 5, {"pipeline_parallel_size": 5}, "pipeline_parallel_size", "5 stages for a model of 4 layers"),
        ([24] * 5, {"layer_partition": [1] * 5}, "layer_partition", "use at most 4 stages"),
        ([24, 16], {"pipeline_parallel_size": 3}, "pipeline_parallel_size", "but 2 GPUs were given"),
        ([24, 16], {"tensor_parallel_size": 3}, "tensor_parallel_size", "product is 2"),
        ([24] * 3, {"tensor_parallel_size": 3}, "tensor_parallel_size", "4 attention heads do not divide over 3"),
        ([24, 16], {"layer_partition": [3, 2]}, "layer_partition", "sums to 5 but the model has 4 layers"),
        ([24, 16], {"layer_partition": [4, 0]}, "layer_partition", "leaves a stage without layers"),
        ([24, 16], {"pipeline_parallel_size": 2, "layer_partition": [4]}, "layer_partition", "has 1 entries"),
        ([24, 16], {"layer_partition": []}, "layer_partition", "is empty"),
        ([24], {"max_model_len": 4096}, "max_model_len", "exceeds the model's max_position_embeddings 2048"),
        ([24], {"gpu_memory_utilization": 1.5}, "gpu_memory_utilization", "not a fraction"),
        ([], {}, "gpu_memory_gb", "no GPUs given"),
        ([24, 0], {}, "gpu_memory_gb", "GPU 1 has 0 GB"),
        ([24, 16], {"gpus_per_host": [1]}, "gpus_per_host", "does not group 2 GPUs"),
        ([24], {"quantization": "int3"}, "quantization", "unknown value 'int3'"),
    ],
)
def test_impossible_requests_name_the_input(
    tiny: ModelShape, gpus: list[float], arguments: dict, field: str, message: str
) -> None:
    with pytest.raises(PlanningError) as error:
        plan(tiny, gpus, **arguments)
    assert error.value.field == field
    assert message in error.value.message


def test_quantized_tensor_size_needs_whole_groups(qwen32b: ModelShape) -> None:
    # 27,648 / 8 ranks = 3,456 rows = 27 groups of 128: fine; 5,120 / 8 = 640 = 5 groups: fine.
    plan(qwen32b, [24] * 8, tensor_parallel_size=8)
    # 40 heads over 16 ranks do not divide at all
    with pytest.raises(PlanningError, match="40 attention heads do not divide over 16"):
        plan(qwen32b, [24] * 16, tensor_parallel_size=16)
    # 8 KV heads replicate over 40 ranks? 40 % 8 == 0, but 27,648 / 40 is not whole
    with pytest.raises(PlanningError, match="intermediate_size 27648 does not divide over 40"):
        plan(qwen32b, [24] * 40, tensor_parallel_size=40)
