"""What the components state to previews and policies is what the units and steps really do: each
stated value is checked against the rendering it claims to describe."""

import pytest

from artifacts.paths import REPO_ROOT
from stack.disclosed import listeners, node_inputs_stated, plan_stated, secret_files
from stack.node_steps import NodeInputs, steps_for
from stack.release import release_secrets
from stack.serving import serving_plan
from stack.validation import load_stack_config
from stack.vllm_unit import api_front_command, vllm_command
from tests.stack.test_service_units import PLAN, VENV


@pytest.mark.parametrize(("bind", "address"), [("localhost", "127.0.0.1"), ("cluster", "10.201.0.11"), ("all", "0.0.0.0")])
def test_the_stated_listeners_are_the_units_own(raw_config, bind, address):
    raw_config["security"] = {"api_bind": bind}
    config = load_stack_config(raw_config, set(), REPO_ROOT)
    stated = {item["service"]: item for item in listeners(config)}
    assert stated["api-front"]["address"] == address
    assert f"--listen={address}:{config.ports.api}" in api_front_command(config, VENV)
    assert f"--host={stated['vllm']['address']}" in vllm_command(config, PLAN, VENV)
    assert stated["api-front"]["tls"] is False


def test_the_stated_secret_files_are_the_releases(raw_config):
    named = secret_files()
    assert sorted(path for paths in named.values() for path in paths) == sorted(release_secrets("t", "k", None))


def test_gpu_plan_states_memory_per_gpu_and_cpu_plan_the_config(raw_config, tmp_path):
    cpu = load_stack_config(raw_config, set(), REPO_ROOT)
    assert plan_stated(cpu, serving_plan(cpu, "/m")) == {"pipeline_size": 2, "tensor_size": 1, "layer_partition": None,
                                                         "max_model_len": None, "gpus": []}  # fmt: skip
    for host, memory in zip(raw_config["hosts"], (24, 16)):
        host.update(accelerator="nvidia", gpus=[{"name": "card", "memory_gb": memory}])
    raw_config["model"].update(quantization="awq", dtype="float16",
                               config_json=str(REPO_ROOT / "models/configs/Qwen2.5-32B-Instruct-AWQ/config.json"))  # fmt: skip
    gpu = load_stack_config(raw_config, set(), REPO_ROOT)
    stated = plan_stated(gpu, serving_plan(gpu, "/m"))
    assert stated["layer_partition"] == [40, 24] and stated["max_model_len"] == 32768
    assert [(g["host"], g["memory_gb"]) for g in stated["gpus"]] == [("lab1", 24), ("lab2", 16)]
    assert all(g["needed_gb"] <= g["budget_gb"] for g in stated["gpus"])


def test_the_stated_steps_are_the_nodes_steps(raw_config):
    raw_config["security"] = {"firewall": False}
    config = load_stack_config(raw_config, set(), REPO_ROOT)
    inputs = NodeInputs.from_config(config, config.hosts[0])
    stated = node_inputs_stated(inputs)
    assert stated["steps"] == [step.name for step in steps_for(inputs)] and "firewall" not in stated["steps"]
    assert (stated["host_keys"], stated["lab"]) == (config.hosts[0].ssh.host_keys, config.hosts[0].lab)
