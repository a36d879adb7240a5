"""`python -m stack.planner`: does a model fit these GPUs, and how should vLLM split it?

Exit status 0 when it fits, 3 when it does not, 2 on bad input (one line naming the flag).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from stack.planner.errors import PlanningError
from stack.planner.memory import GIB, decoder_layer_bytes, kv_bytes_per_token, vocab_matrix_bytes
from stack.planner.plan import plan
from stack.planner.shape import QUANTIZATION_CHOICES, ModelShape, resolve_quantization

EXIT_FITS = 0
EXIT_BAD_INPUT = 2
EXIT_DOES_NOT_FIT = 3

# The flag behind each input a PlanningError may name.
FLAGS = {
    "model_config": "--model-config",
    "gpu_memory_gb": "--gpus",
    "gpus_per_host": "--gpus",
    "quantization": "--quantization",
    "max_model_len": "--max-model-len",
    "gpu_memory_utilization": "--gpu-memory-utilization",
    "pipeline_parallel_size": "--pipeline-parallel-size",
    "tensor_parallel_size": "--tensor-parallel-size",
    "layer_partition": "--layer-partition",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, no usage block: the message names the flag."""
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    gpus, gpus_per_host = args.gpus
    try:
        shape = ModelShape.from_config_json(args.model_config)
        result = plan(
            shape,
            gpus,
            gpus_per_host=gpus_per_host,
            quantization=args.quantization,
            max_model_len=args.max_model_len,
            gpu_memory_utilization=args.gpu_memory_utilization,
            pipeline_parallel_size=args.pipeline_parallel_size,
            tensor_parallel_size=args.tensor_parallel_size,
            layer_partition=args.layer_partition,
        )
    except PlanningError as error:
        parser.error(f"{FLAGS.get(error.field, error.field)}: {error.message}")
    print(result.model_dump_json(indent=2) if args.json else _summary(shape, args.quantization) + "\n" + result.table())
    return EXIT_FITS if result.fits else EXIT_DOES_NOT_FIT


def _parser() -> _Parser:
    parser = _Parser(
        prog="python -m stack.planner",
        description="Plan vLLM pipeline/tensor sizes, layer split and max_model_len for a model on mismatched GPUs.",
    )
    add = parser.add_argument
    add("--model-config", required=True, metavar="PATH", help="the model's config.json, or its directory")
    add(
        "--gpus",
        required=True,
        type=_gpus,
        metavar="GB,GB",
        help="each GPU's memory in GB, head first: hosts separated by ',', GPUs of one host by '+' (24,16 or 24+24,16)",
    )
    add(
        "--quantization",
        choices=list(QUANTIZATION_CHOICES),
        help="plan the weights in this format instead of what config.json's quantization_config says",
    )
    add("--max-model-len", type=int, metavar="TOKENS", help="check this context length instead of finding the largest")
    add("--gpu-memory-utilization", type=float, default=0.9, metavar="FRACTION", help="vLLM's one fraction, all GPUs")
    add("--pipeline-parallel-size", type=int, metavar="N", help="check this pipeline size instead of choosing one")
    add("--tensor-parallel-size", type=int, metavar="N", help="check this tensor size instead of choosing one")
    add("--layer-partition", type=_counts, metavar="N,N", help="check this layer split, e.g. 40,24")
    add("--json", action="store_true", help="print the plan as JSON")
    return parser


def _gpus(text: str) -> tuple[list[float], list[int]]:
    """'24+24,16' -> ([24, 24, 16], [2, 1]): every GPU in stage order, and each host's GPU count."""
    try:
        hosts = [[float(gpu) for gpu in host.split("+")] for host in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of GB sizes, like 24,16 or 24+24,16") from None
    return [gpu for host in hosts for gpu in host], [len(host) for host in hosts]


def _counts(text: str) -> list[int]:
    try:
        return [int(count) for count in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of layer counts; write e.g. 40,24") from None


def _summary(shape: ModelShape, quantization: str | None) -> str:
    """The plan's unit costs (one GPU, no tensor parallelism), for checking its arithmetic by hand."""
    weights = resolve_quantization(shape, quantization)
    stored = weights.label if weights else f"{shape.dtype} served as 16-bit"
    head = "tied to the embedding" if shape.tie_word_embeddings else "untied"
    return (
        f"{shape.name}: {shape.num_hidden_layers} layers, {stored}; {_size(decoder_layer_bytes(shape, weights))} "
        f"per layer, embedding {_size(vocab_matrix_bytes(shape))} (LM head {head}), "
        f"KV cache {_size(kv_bytes_per_token(shape) * shape.num_hidden_layers)} per token"
    )


def _size(count: int) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", 2**20)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{count / 2**10:g} KiB"


if __name__ == "__main__":
    sys.exit(main())
