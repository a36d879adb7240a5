import hashlib
import json
import struct
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from models.tiny_model import (
    CHAT_TEMPLATE,
    IM_END,
    to_bfloat16_bits,
    weight_shapes,
    write_tiny_model,
)


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def safetensors_header(path: Path) -> dict:
    with path.open("rb") as stream:
        (length,) = struct.unpack("<Q", stream.read(8))
        return json.loads(stream.read(length))


def test_two_runs_write_identical_files(tmp_path):
    first = write_tiny_model(tmp_path / "a")
    second = write_tiny_model(tmp_path / "b")
    assert tree_digest(first) == tree_digest(second)
    assert {p.name for p in first.iterdir()} == {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    }


def test_weights_are_bf16_and_match_the_config(tmp_path):
    out = write_tiny_model(tmp_path)
    config = json.loads((out / "config.json").read_text())
    header = safetensors_header(out / "model.safetensors")
    header.pop("__metadata__")
    expected = weight_shapes(config["vocab_size"])
    assert {name: tuple(t["shape"]) for name, t in header.items()} == expected
    assert {t["dtype"] for t in header.values()} == {"BF16"}
    assert "lm_head.weight" not in header and config["tie_word_embeddings"]


def test_tokenizer_covers_the_vocab_and_ends_chats(tmp_path):
    out = write_tiny_model(tmp_path)
    config = json.loads((out / "config.json").read_text())
    tokenizer = Tokenizer.from_file(str(out / "tokenizer.json"))
    assert tokenizer.get_vocab_size() == config["vocab_size"] >= 2000
    assert config["eos_token_id"] == tokenizer.token_to_id(IM_END)
    text = "Hello world, the cluster node is ready!"
    assert tokenizer.decode(tokenizer.encode(text).ids) == text
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
    assert tokenizer_config["chat_template"] == CHAT_TEMPLATE


def test_bfloat16_rounds_to_nearest_even():
    values = np.array([1.0, -2.0, 1.00390625, 1.01171875, 3.0e-3], dtype=np.float32)
    bits = to_bfloat16_bits(values)
    # 1.00390625 lies halfway between 1.0 and 1.0078125: ties go to the even mantissa (1.0).
    assert bits[:4].tolist() == [0x3F80, 0xC000, 0x3F80, 0x3F82]
    back = (bits.astype(np.uint32) << 16).view(np.float32)
    assert abs(back[4] - values[4]) / values[4] < 2**-8
