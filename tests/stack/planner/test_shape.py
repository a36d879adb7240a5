"""Reading config.json and resolving the weight format."""

import json
from pathlib import Path

import pytest

from stack.planner import ModelShape, PlanningError, Quantization, resolve_quantization

MINIMAL = {
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "vocab_size": 100,
}


def test_reads_the_32b_awq_config(qwen32b_path: Path) -> None:
    shape = ModelShape.from_config_json(qwen32b_path.parent)  # the model directory works too
    assert shape.name == "Qwen2.5-32B-Instruct-AWQ"
    assert (shape.num_hidden_layers, shape.hidden_size, shape.intermediate_size, shape.vocab_size) == (
        64,
        5120,
        27648,
        152064,
    )
    assert (shape.num_attention_heads, shape.num_key_value_heads, shape.head_dim) == (40, 8, 128)
    assert not shape.tie_word_embeddings
    assert shape.max_position_embeddings == 32768
    assert resolve_quantization(shape, None) == Quantization(method="awq", bits=4, group_size=128)


def test_reads_the_tiny_config(tiny: ModelShape) -> None:
    assert (tiny.num_hidden_layers, tiny.num_key_value_heads, tiny.head_dim, tiny.vocab_size) == (4, 2, 64, 4096)
    assert tiny.tie_word_embeddings
    assert tiny.dtype == "bfloat16"  # transformers 5 spells it `dtype`
    assert resolve_quantization(tiny, None) is None


def test_defaults_for_kv_heads_head_dim_and_tying() -> None:
    shape = ModelShape.from_config_json(MINIMAL)
    assert shape.num_key_value_heads == 4  # no grouped-query attention
    assert shape.head_dim == 16  # 64 / 4
    assert not shape.tie_word_embeddings  # untied counts the LM head separately: the safe side
    assert shape.max_position_embeddings is None


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("none", None),
        ("awq", Quantization(method="awq", bits=4, group_size=64)),  # the checkpoint's own group size
        ("gptq", Quantization(method="gptq", bits=4, group_size=128)),  # not the checkpoint's method: default group
        ("gptq-8bit", Quantization(method="gptq", bits=8, group_size=128)),
        ("fp8", Quantization(method="fp8", bits=8, group_size=None)),
    ],
)
def test_override_wins_over_quantization_config(override: str, expected: Quantization | None) -> None:
    checkpoint = {"quant_method": "awq", "bits": 4, "group_size": 64}
    shape = ModelShape.from_config_json({**MINIMAL, "quantization_config": checkpoint})
    assert resolve_quantization(shape, override) == expected


def test_per_channel_gptq_has_no_group() -> None:
    checkpoint = {"quant_method": "gptq", "bits": 8, "group_size": -1}
    shape = ModelShape.from_config_json({**MINIMAL, "quantization_config": checkpoint})
    assert resolve_quantization(shape, None) == Quantization(method="gptq", bits=8, group_size=None)


def test_unmodelled_checkpoint_method_names_the_override() -> None:
    shape = ModelShape.from_config_json({**MINIMAL, "quantization_config": {"quant_method": "bitsandbytes"}})
    with pytest.raises(PlanningError) as error:
        resolve_quantization(shape, None)
    assert error.value.field == "quantization"
    assert "'bitsandbytes' is not modelled" in error.value.message
    assert resolve_quantization(shape, "gptq") == Quantization(method="gptq", bits=4, group_size=128)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({key: value for key, value in MINIMAL.items() if key != "vocab_size"}, "no vocab_size"),
        ({**MINIMAL, "hidden_size": "wide"}, "hidden_size input should be a valid integer"),
        ({**MINIMAL, "num_local_experts": 8}, "mixture-of-experts model (num_local_experts: 8)"),
    ],
)
def test_bad_configs_name_the_key(config: dict, message: str) -> None:
    with pytest.raises(PlanningError) as error:
        ModelShape.from_config_json(config)
    assert error.value.field == "model_config"
    assert message in error.value.message


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(PlanningError, match="does not exist"):
        ModelShape.from_config_json(tmp_path / "missing.json")
    broken = tmp_path / "config.json"
    broken.write_text("{not json")
    with pytest.raises(PlanningError, match="is not readable JSON"):
        ModelShape.from_config_json(tmp_path)
    broken.write_text(json.dumps([1, 2]))
    with pytest.raises(PlanningError, match="holds a JSON list"):
        ModelShape.from_config_json(broken)
