"""`python -m stack.planner`: the JSON document, the table, and the exit status."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stack.planner.__main__ import main

JSON_KEYS = {"fits", "pipeline_parallel_size", "tensor_parallel_size", "layer_partition", "max_model_len", "per_gpu"}
GPU_KEYS = {"gpu_memory_gb", "layers", "weights_gb", "kv_cache_gb", "total_gb", "utilization"}


def planner(repo_root: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stack.planner", *arguments],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_json_when_it_fits(repo_root: Path, qwen32b_path: Path) -> None:
    result = planner(repo_root, "--model-config", str(qwen32b_path), "--gpus", "24,16", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert JSON_KEYS <= document.keys()
    assert all(GPU_KEYS <= gpu.keys() for gpu in document["per_gpu"])
    assert document["fits"] is True
    assert document["layer_partition"] == [40, 24]
    assert document["max_model_len"] == 32768


def test_json_and_exit_3_when_it_does_not_fit(repo_root: Path, qwen32b_path: Path) -> None:
    result = planner(repo_root, "--model-config", str(qwen32b_path), "--gpus", "16", "--json")
    assert result.returncode == 3
    assert json.loads(result.stdout)["fits"] is False


def test_table_shows_the_split_and_the_vllm_settings(repo_root: Path, qwen32b_path: Path) -> None:
    result = planner(
        repo_root, "--model-config", str(qwen32b_path.parent), "--gpus", "24,16", "--max-model-len", "16384"
    )
    assert result.returncode == 0, result.stderr
    assert "fits: pipeline 2 x tensor 1 on 2 GPU(s), layers 40,24, max_model_len 16384" in result.stdout
    assert "VLLM_PP_LAYER_PARTITION=40,24 --pipeline-parallel-size=2" in result.stdout


def test_table_shows_the_shortfall(repo_root: Path, qwen32b_path: Path) -> None:
    result = planner(repo_root, "--model-config", str(qwen32b_path), "--gpus", "16", "--quantization", "gptq-8bit")
    assert result.returncode == 3
    assert "does not fit" in result.stdout
    assert "GPU 0 (16 GB, stage 0, 64 layers): needs" in result.stdout


def test_bad_input_exits_2_with_one_line(repo_root: Path, tmp_path: Path) -> None:
    result = planner(repo_root, "--model-config", str(tmp_path / "nope.json"), "--gpus", "24")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"python -m stack.planner: error: --model-config: {tmp_path / 'nope.json'} does not exist; "
        "point it at the model's config.json"
    ]


@pytest.mark.parametrize(
    ("arguments", "flag"),
    [
        (["--gpus", "24,abc"], "--gpus"),
        (["--gpus", "24", "--max-model-len", "4096"], "--max-model-len"),
        (["--gpus", "24,16", "--layer-partition", "3,3"], "--layer-partition"),
        (["--gpus", "24", "--quantization", "int3"], "--quantization"),
        (["--gpus", "24", "--gpu-memory-utilization", "0"], "--gpu-memory-utilization"),
        (["--gpus", "24", "--tensor-parallel-size", "3"], "--tensor-parallel-size"),
    ],
)
def test_bad_input_names_the_flag(
    tiny_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], flag: str
) -> None:
    with pytest.raises(SystemExit) as exit_status:
        main(["--model-config", str(tiny_path), *arguments])
    assert exit_status.value.code == 2
    output = capsys.readouterr()
    assert output.out == ""
    assert len(output.err.splitlines()) == 1
    assert f"error: {flag}" in output.err or f"argument {flag}" in output.err
