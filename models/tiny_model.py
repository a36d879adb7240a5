"""A tiny Qwen2-architecture model, made locally, for serving tests where no model hub is reachable.

    python -m models.tiny_model --out DIR

Random weights (about 3.4 M parameters, bf16 safetensors) and a byte-level BPE tokenizer trained
on a built-in corpus, with a ChatML chat template so `/v1/chat/completions` works. The output is
byte-identical on every run: seeded generators, sorted JSON, and a corpus that is generated
from fixed word lists. Needs numpy, safetensors and tokenizers only (no torch on the controller).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
from safetensors import TensorSpec, serialize_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

HIDDEN = 256
LAYERS = 4
HEADS = 4
KV_HEADS = 2
HEAD_DIM = HIDDEN // HEADS
INTERMEDIATE = 512
MAX_POSITIONS = 2048
TOKENIZER_VOCAB = 4096
WEIGHT_SEED = 20240601
CORPUS_SEED = 7
INIT_STD = 0.02

END_OF_TEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [END_OF_TEXT, IM_START, IM_END]

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

_WORDS = (
    "the a an of to and in is it that for on with as was at by be this from are or have not "
    "you we they he she one all there their what which when will can would about up out so if "
    "cluster node host model server request token layer stage pipeline parallel memory cache "
    "network address port worker head driver engine process thread queue batch prompt answer "
    "question chat user assistant system message reply hello world time day year number first "
    "last next small large fast slow good new old long short high low open close start stop "
    "run send receive read write load save build test check ready healthy error retry wait "
    "ray vllm python linux debian cpu gpu disk file path folder config value key name list"
).split()
_SYLLABLES = (
    "ka ri to mu se na lo vi de pa ku mi zo te ra ne gu ha shi yo be fa ji lu wo ce di "
    "an en in on un ar er or ul il el al st tr pl br cr gr"
).split()


def build_corpus(seed: int = CORPUS_SEED, sentences: int = 6000) -> list[str]:
    """Sentences of common words, digits and invented words (so that BPE finds thousands of
    merges). `random.Random` is seeded and its sequences are stable across Python versions."""
    rng = random.Random(seed)
    invented = sorted({"".join(rng.choices(_SYLLABLES, k=rng.randint(2, 4))) for _ in range(3000)})
    corpus = []
    for _ in range(sentences):
        words = [
            rng.choice(invented) if rng.random() < 0.3 else rng.choice(_WORDS)
            for _ in range(rng.randint(4, 14))
        ]
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 10_000)))
        sentence = " ".join(words).capitalize() + rng.choice([".", ".", "?", "!", ","])
        corpus.append(sentence)
    return corpus


def train_tokenizer(corpus: list[str]) -> Tokenizer:
    """Byte-level BPE (the Qwen2 scheme), so any text round-trips without an unknown token."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return tokenizer


def model_config(vocab_size: int, tokenizer: Tokenizer) -> dict:
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "hidden_act": "silu",
        "max_position_embeddings": MAX_POSITIONS,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "use_sliding_window": False,
        "attention_dropout": 0.0,
        "initializer_range": INIT_STD,
        "vocab_size": vocab_size,
        "bos_token_id": tokenizer.token_to_id(END_OF_TEXT),
        "eos_token_id": tokenizer.token_to_id(IM_END),
        "dtype": "bfloat16",
        "use_cache": True,
    }


def weight_shapes(vocab_size: int) -> dict[str, tuple[int, ...]]:
    """Qwen2's parameter names and shapes; the LM head is tied to the embedding."""
    q, kv = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab_size, HIDDEN)}
    for i in range(LAYERS):
        layer = f"model.layers.{i}"
        shapes |= {
            f"{layer}.input_layernorm.weight": (HIDDEN,),
            f"{layer}.self_attn.q_proj.weight": (q, HIDDEN),
            f"{layer}.self_attn.q_proj.bias": (q,),
            f"{layer}.self_attn.k_proj.weight": (kv, HIDDEN),
            f"{layer}.self_attn.k_proj.bias": (kv,),
            f"{layer}.self_attn.v_proj.weight": (kv, HIDDEN),
            f"{layer}.self_attn.v_proj.bias": (kv,),
            f"{layer}.self_attn.o_proj.weight": (HIDDEN, q),
            f"{layer}.post_attention_layernorm.weight": (HIDDEN,),
            f"{layer}.mlp.gate_proj.weight": (INTERMEDIATE, HIDDEN),
            f"{layer}.mlp.up_proj.weight": (INTERMEDIATE, HIDDEN),
            f"{layer}.mlp.down_proj.weight": (HIDDEN, INTERMEDIATE),
        }
    shapes["model.norm.weight"] = (HIDDEN,)
    return shapes


def random_weights(vocab_size: int, seed: int = WEIGHT_SEED) -> dict[str, np.ndarray]:
    """Normal(0, INIT_STD) matrices, zero biases, unit norms, in float32."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in weight_shapes(vocab_size).items():
        if name.endswith("norm.weight"):
            weights[name] = np.ones(shape, dtype=np.float32)
        elif name.endswith(".bias"):
            weights[name] = np.zeros(shape, dtype=np.float32)
        else:
            weights[name] = rng.normal(0.0, INIT_STD, size=shape).astype(np.float32)
    return weights


def to_bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), rounding to nearest even; numpy has no bf16."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounding = np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return ((bits + rounding) >> np.uint32(16)).astype(np.uint16)


def save_bfloat16(weights: dict[str, np.ndarray], path: Path) -> None:
    bf16 = {name: to_bfloat16_bits(value) for name, value in weights.items()}
    specs = {
        name: TensorSpec(
            dtype="bfloat16",
            shape=list(bits.shape),
            data_ptr=bits.ctypes.data,
            data_len=bits.nbytes,
        )
        for name, bits in bf16.items()
    }
    # `bf16` keeps the buffers alive while the Rust side reads them through data_ptr.
    serialize_file(specs, str(path), metadata={"format": "pt"})


def tokenizer_config() -> dict:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": IM_END,
        "pad_token": END_OF_TEXT,
        "unk_token": None,
        "model_max_length": MAX_POSITIONS,
        "clean_up_tokenization_spaces": False,
        "add_prefix_space": False,
        "chat_template": CHAT_TEMPLATE,
    }


def generation_config(tokenizer: Tokenizer) -> dict:
    return {
        "bos_token_id": tokenizer.token_to_id(END_OF_TEXT),
        "eos_token_id": [tokenizer.token_to_id(IM_END), tokenizer.token_to_id(END_OF_TEXT)],
        "pad_token_id": tokenizer.token_to_id(END_OF_TEXT),
    }


def write_tiny_model(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(build_corpus())
    vocab_size = tokenizer.get_vocab_size()  # every id the model can emit decodes
    tokenizer.save(str(out / "tokenizer.json"))
    _write_json(out / "tokenizer_config.json", tokenizer_config())
    _write_json(out / "config.json", model_config(vocab_size, tokenizer))
    _write_json(out / "generation_config.json", generation_config(tokenizer))
    save_bfloat16(random_weights(vocab_size), out / "model.safetensors")
    return out


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write the model into")
    args = parser.parse_args(argv)
    print(write_tiny_model(args.out))


if __name__ == "__main__":
    main()
