"""The review summary of real previews of the gpu-pair example, offline (its hosts are never reached):
a change after a recorded `up` (a new `max_model_len`, one host added), and the CI example's shell
script run on the stack as a CI job runs it."""

import subprocess

import pytest
import yaml

from artifacts.paths import REPO_ROOT
from tests.program.test_gpu_stack_engine import gpu_pair_config
from tests.support.recorded_state import record_applied_state

pytestmark = pytest.mark.engine

SECRETS = {"api_key": "review-test-api-key-0123456789abcdef", "ray_token": "review-test-ray-token-0123456789abcdef"}


def review(project, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["python", "-m", "tools.review", "--cwd", str(project.workdir), *args],
        cwd=REPO_ROOT, env=project.env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_summary_of_a_new_context_length_and_an_added_host(pulumi_project, tmp_path, ssh_key):
    pulumi_project.new_stack("gpu-pair", gpu_pair_config(tmp_path, ssh_key))
    for key, value in SECRETS.items():
        pulumi_project.run("config", "set", "--secret", key, value)
    record_applied_state(pulumi_project, "gpu-pair", SECRETS)
    unchanged = review(pulumi_project, "--stack", "gpu-pair")
    assert unchanged.returncode == 0, unchanged.stderr
    # Positive control: with nothing changed, nothing restarts and no step of any host changes.
    assert "Nothing: every unit keeps running." in unchanged.stdout
    assert unchanged.stdout.count("no step changes") == 2, unchanged.stdout

    # A changed copy of the example: a third host, a shorter context, a stage more.
    inventory = yaml.safe_load((tmp_path / "gpu-pair.yaml").read_text())
    added = {**inventory["hosts"][1], "name": "gpu16c", "address": "192.168.50.13"}
    (tmp_path / "gpu-trio.yaml").write_text(yaml.safe_dump({"hosts": [*inventory["hosts"], added]}))
    pulumi_project.run("config", "set", "inventory", str(tmp_path / "gpu-trio.yaml"))
    pulumi_project.run("config", "set", "--path", "vllm.max_model_len", "16384")
    pulumi_project.run("config", "set", "--path", "parallelism.pipeline_size", "3")
    changed = review(pulumi_project, "--stack", "gpu-pair")
    assert changed.returncode == 0, changed.stderr
    summary = changed.stdout
    assert "| context length (max_model_len) | 32768 | **16384** |" in summary, summary
    assert "| pipeline x tensor | 2 x 1 | **3 x 1** |" in summary
    assert "**gpu16c** (new: 192.168.50.13, worker, RTX 4080 16 GB): every step runs:" in summary
    assert "| gpu16c | rvs-ray-worker.service | start | new |" in summary
    assert "| gpu24 | rvs-vllm.service | restart | `unit.unit_text`:" in summary
    assert "+`--max-model-len=16384`" in summary
    assert "Keep running: gpu24 rvs-ray-head.service, gpu16 rvs-ray-worker.service." in summary
    assert "No secret rotates." in summary
    assert not any(value in summary for value in SECRETS.values())


def test_the_ci_script_writes_the_comment_body_for_any_stack(pulumi_project, tmp_path, ssh_key):
    pulumi_project.new_stack("gpu-pair", gpu_pair_config(tmp_path, ssh_key))
    body = tmp_path / "comment.md"
    script = REPO_ROOT / "examples" / "ci" / "review.sh"
    done = subprocess.run([str(script), "gpu-pair", str(pulumi_project.workdir), str(body)],
                          env=pulumi_project.env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    text = body.read_text()
    assert text.startswith("### `pulumi preview` of gpu-pair\n")
    assert "| layer split | - | 40, 24 |" in text and "| api-front | gpu24 | 192.168.50.11:8000 | no |" in text
    # Control: a stack that does not exist fails the job with Pulumi's message, and writes no body.
    failed = subprocess.run([str(script), "no-such-stack", str(pulumi_project.workdir), str(tmp_path / "none.md")],
                            env=pulumi_project.env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert failed.returncode != 0 and "no-such-stack" in failed.stderr
    assert not (tmp_path / "none.md").exists()
