"""What a model's config.json says about its memory, and how its linear weights are stored.

Only dense decoder-only transformers (Llama, Qwen2/3, Mistral and the like) are modelled: every
decoder layer has the same attention (q, k, v, o projections) and gated MLP (gate, up, down).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PositiveInt, ValidationError, model_validator

from stack.planner.errors import PlanningError

# The config.json keys ModelShape reads, under the same names.
SHAPE_KEYS = (
    "num_hidden_layers",
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "intermediate_size",
    "vocab_size",
    "tie_word_embeddings",
    "max_position_embeddings",
    "quantization_config",
)
# Keys whose presence marks a mixture-of-experts config, whose MLP is not the dense one modelled here.
MOE_KEYS = ("num_experts", "num_local_experts", "n_routed_experts")

# The quantization a caller may ask for, as (quant_method, bits). "none" plans the unquantized model;
# leaving it out (None) plans the checkpoint as its config.json's quantization_config describes it.
QUANTIZATION_CHOICES: dict[str, tuple[str, int] | None] = {
    "none": None,
    "awq": ("awq", 4),
    "gptq": ("gptq", 4),
    "gptq-8bit": ("gptq", 8),
    "fp8": ("fp8", 8),
}
# Group size assumed when a checkpoint's quantization_config does not give one: the usual AWQ/GPTQ export.
DEFAULT_GROUP_SIZE = 128


class Quantization(BaseModel):
    """How linear-layer weights are stored; embeddings and LM head keep the model dtype.

    vLLM's AWQ, GPTQ and FP8 methods quantize only `LinearBase` layers, so the vocabulary matrices stay
    16-bit (GPTQ checkpoints exported with `lm_head: true` are the exception; planning them 16-bit only
    overestimates).
    """

    model_config = ConfigDict(frozen=True)

    method: Literal["awq", "gptq", "fp8"]
    bits: Literal[4, 8]
    # Input rows sharing one scale; None for per-channel or per-tensor scales, whose O(columns) bytes
    # per matrix are ignored like biases.
    group_size: PositiveInt | None

    @property
    def label(self) -> str:
        group = f" group {self.group_size}" if self.group_size else ""
        return f"{self.method} {self.bits}-bit{group}"


class ModelShape(BaseModel):
    """The config.json numbers that decide how much memory the model needs.

    Read only what changes bytes: sliding windows, RoPE scaling and the like leave the weights alone and
    are planned as full attention (an overestimate of KV cache for sliding-window layers).
    """

    model_config = ConfigDict(frozen=True)

    name: str = "model"
    num_hidden_layers: PositiveInt
    hidden_size: PositiveInt
    num_attention_heads: PositiveInt
    num_key_value_heads: PositiveInt
    head_dim: PositiveInt
    intermediate_size: PositiveInt
    vocab_size: PositiveInt
    # Missing means untied: the planner then counts a separate LM head, which only overestimates.
    tie_word_embeddings: bool = False
    # The checkpoint's dtype, for the record: vLLM serves every one of them in 16 bits (see memory.py).
    dtype: str = "unknown"
    max_position_embeddings: PositiveInt | None = None
    # As config.json has it; resolve_quantization() interprets it, so that an override can replace a
    # method the planner does not model.
    quantization_config: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _head_defaults(cls, data: dict[str, Any]) -> dict[str, Any]:
        """config.json may omit KV heads (no grouped-query attention) and head_dim (then hidden / heads)."""
        heads, hidden = data.get("num_attention_heads"), data.get("hidden_size")
        derived = {"num_key_value_heads": heads}
        if isinstance(heads, int) and isinstance(hidden, int) and heads > 0:
            derived["head_dim"] = hidden // heads
        return {**derived, **{key: value for key, value in data.items() if value is not None}}

    @classmethod
    def from_config_json(cls, source: str | Path | Mapping[str, Any]) -> ModelShape:
        """Read a config.json (a file, a model directory holding one, or the parsed dict)."""
        if isinstance(source, Mapping):
            config, origin = dict(source), "config.json"
            name = str(config.get("_name_or_path") or "model")
        else:
            path = Path(source)
            path = path / "config.json" if path.is_dir() else path
            config, origin, name = read_config_json(path), str(path), path.parent.name or "model"
        return _shape_from_config(config, origin, name)


def resolve_quantization(shape: ModelShape, override: str | None) -> Quantization | None:
    """The override wins; None plans the checkpoint as its quantization_config says."""
    checkpoint = shape.quantization_config or {}
    if override is None:
        method = checkpoint.get("quant_method")
        if method is None:
            return None
        if method not in ("awq", "gptq", "fp8"):
            raise PlanningError(
                "quantization",
                f"config.json's quantization_config.quant_method {method!r} is not modelled; "
                f"pass one of {', '.join(QUANTIZATION_CHOICES)} to plan it as that",
            )
        bits = 8 if method == "fp8" else checkpoint.get("bits", 4)
    elif override not in QUANTIZATION_CHOICES:
        choices = ", ".join(QUANTIZATION_CHOICES)
        raise PlanningError("quantization", f"unknown value {override!r}; use one of {choices}")
    elif (chosen := QUANTIZATION_CHOICES[override]) is None:
        return None
    else:
        method, bits = chosen
    if bits not in (4, 8):
        raise PlanningError("quantization", f"{method} with {bits} bits is not modelled; use 4 or 8 bits")
    return Quantization(method=method, bits=bits, group_size=_group_size(method, checkpoint))


def _group_size(method: str, checkpoint: Mapping[str, Any]) -> int | None:
    """FP8 has per-tensor or block scales (negligible); AWQ/GPTQ take the checkpoint's group size if it is theirs."""
    if method == "fp8":
        return None
    own = checkpoint.get("quant_method") == method
    group = checkpoint.get("group_size", DEFAULT_GROUP_SIZE) if own else DEFAULT_GROUP_SIZE
    return None if group == -1 else group  # -1: one scale per output column


def read_config_json(path: Path) -> dict[str, Any]:
    """A model's config.json, parsed; a missing or broken file is a PlanningError naming it."""
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise PlanningError("model_config", f"{path} does not exist; point it at the model's config.json") from None
    except (OSError, ValueError) as error:
        raise PlanningError("model_config", f"{path} is not readable JSON ({error})") from None
    if not isinstance(config, dict):
        raise PlanningError("model_config", f"{path} holds a JSON {type(config).__name__}, not an object")
    return config


def _shape_from_config(config: dict[str, Any], origin: str, name: str) -> ModelShape:
    for key in MOE_KEYS:
        if config.get(key):
            raise PlanningError(
                "model_config",
                f"{origin} is a mixture-of-experts model ({key}: {config[key]}); only dense decoders are planned",
            )
    fields = {key: config.get(key) for key in SHAPE_KEYS}
    # transformers 5 renamed torch_dtype to dtype.
    fields["dtype"] = str(config.get("dtype") or config.get("torch_dtype") or "unknown")
    try:
        return ModelShape.model_validate({"name": name, **fields})
    except ValidationError as error:
        detail = "; ".join(_describe(item) for item in error.errors())
        fix = "give the config.json of a dense decoder-only LLM"
        raise PlanningError("model_config", f"{origin}: {detail}; {fix}") from None


def _describe(item: Mapping[str, Any]) -> str:
    key = ".".join(map(str, item["loc"]))
    return f"no {key}" if item["type"] == "missing" else f"{key} {item['msg'].lower()} (got {item['input']!r})"
