"""The rendered Ray and vLLM units: the GPU path is checked here, without a GPU."""

import ast

import pytest

from artifacts.paths import REPO_ROOT
from stack.ray_units import CPU_STAGE_RESOURCE, ray_start_command, ray_unit
from stack.systemd_unit import START_LIMIT_BURST, START_LIMIT_INTERVAL_S, quote_argument
from stack.validation import load_stack_config
from stack.vllm_unit import (
    ServingPlan,
    api_front_command,
    api_front_unit,
    endpoint_url,
    vllm_command,
    vllm_environment,
    vllm_unit,
)

VENV = "/opt/ray-vllm-stack/venvs/cpu-0123456789abcdef"
PLAN = ServingPlan("/var/lib/ray-vllm-stack/models/m", [40, 24], 32768)


@pytest.fixture
def cpu_config(raw_config):
    return load_stack_config(raw_config, set(), REPO_ROOT)


@pytest.fixture
def gpu_config(raw_config, tmp_path):
    for host, memory in zip(raw_config["hosts"], (24, 16)):
        host.update(accelerator="nvidia", gpus=[{"name": "card", "memory_gb": memory}])
    raw_config["model"].update(quantization="awq", dtype="float16")
    return load_stack_config(raw_config, set(), REPO_ROOT)


def flag(command: list[str], name: str) -> str | None:
    return next((arg.split("=", 1)[1] for arg in command if arg.startswith(f"--{name}=")), None)


def test_head_binds_every_port_and_its_own_address(cpu_config):
    head = cpu_config.head
    command = ray_start_command(head, head, cpu_config.ports, cpu_config.ray, cpu_config.security, VENV)
    assert "--head" in command and "--block" in command
    assert flag(command, "node-ip-address") == "10.201.0.11"
    assert flag(command, "port") == "6379"
    assert flag(command, "dashboard-host") == "127.0.0.1"  # secure default: dashboard on loopback
    assert flag(command, "resources") == '{"%s":1.0}' % CPU_STAGE_RESOURCE
    for port in ("node-manager-port", "object-manager-port", "min-worker-port", "max-worker-port"):
        assert flag(command, port) is not None


def test_worker_joins_the_head_with_its_own_address(cpu_config):
    worker = cpu_config.hosts[1]
    command = ray_start_command(worker, cpu_config.head, cpu_config.ports, cpu_config.ray, cpu_config.security, VENV)
    assert "--head" not in command
    assert flag(command, "address") == "10.201.0.11:6379"
    assert flag(command, "node-ip-address") == "10.201.0.12"


def test_gpu_nodes_declare_their_gpus(gpu_config):
    worker = gpu_config.hosts[1]
    command = ray_start_command(worker, gpu_config.head, gpu_config.ports, gpu_config.ray, gpu_config.security, VENV)
    assert flag(command, "num-gpus") == "1"
    assert flag(command, "resources") is None


def test_ray_unit_turns_token_auth_on_and_restarts(cpu_config):
    unit = ray_unit(cpu_config.head, cpu_config.head, cpu_config.ports, cpu_config.ray, cpu_config.security, VENV)
    assert "Environment=RAY_AUTH_MODE=token" in unit
    assert "Environment=RAY_AUTH_TOKEN_PATH=/etc/ray-vllm-stack/secrets/ray_token" in unit
    assert "Restart=always" in unit
    assert "EnvironmentFile=/etc/ray-vllm-stack/node.env" in unit
    # systemd would expand the quotes of the JSON otherwise
    assert '"--resources={\\"cpu_stage\\":1.0}"' in unit


def test_cpu_resource_matches_the_plugin():
    source = (REPO_ROOT / "plugins/vllm-ray-cpu/src/vllm_ray_cpu/__init__.py").read_text()
    constants = {
        node.targets[0].id: node.value.value
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
    }
    assert constants["RAY_RESOURCE"] == CPU_STAGE_RESOURCE


def test_gpu_vllm_command_is_the_cuda_path(gpu_config):
    command = vllm_command(gpu_config, PLAN, VENV)
    assert command[:3] == [f"{VENV}/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    assert flag(command, "pipeline-parallel-size") == "2"
    assert flag(command, "distributed-executor-backend") == "ray"
    assert flag(command, "gpu-memory-utilization") == "0.9"
    assert flag(command, "quantization") == "awq"
    assert flag(command, "max-model-len") == "32768"
    assert flag(command, "host") == "127.0.0.1"  # behind the API front
    assert flag(command, "port") == "8001"
    environment = vllm_environment(gpu_config, PLAN)
    assert environment["VLLM_PP_LAYER_PARTITION"] == "40,24"
    assert "VLLM_CPU_KVCACHE_SPACE" not in environment


def test_cpu_vllm_command_has_no_gpu_flags(cpu_config):
    plan = ServingPlan("/m", None, 1024)
    command = vllm_command(cpu_config, plan, VENV)
    assert flag(command, "gpu-memory-utilization") is None
    environment = vllm_environment(cpu_config, plan)
    assert environment["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert "VLLM_PP_LAYER_PARTITION" not in environment


def test_api_key_stays_out_of_the_unit(cpu_config):
    unit = vllm_unit(cpu_config, PLAN, VENV)
    assert "EnvironmentFile=/etc/ray-vllm-stack/secrets/vllm.env" in unit
    assert "api-key" not in unit and "VLLM_API_KEY" not in unit
    assert 'ExecStopPost=/bin/sh -c "rm -f /dev/shm/psm_*"' in unit


@pytest.mark.parametrize(("bind", "url"), [
    ("cluster", "http://10.201.0.11:8000"), ("localhost", "http://127.0.0.1:8000"), ("all", "http://10.201.0.11:8000"),
])
def test_endpoint_follows_the_bind_setting(raw_config, bind, url):
    raw_config["security"] = {"api_bind": bind}
    assert endpoint_url(load_stack_config(raw_config, set(), REPO_ROOT)) == url


@pytest.mark.parametrize(("argument", "quoted"), [
    ("--port=6379", "--port=6379"),
    ("100%", "100%%"),
    ("$HOME", '"$$HOME"'),
    ('{"a": 1}', '"{\\"a\\": 1}"'),
])
def test_systemd_quoting(argument, quoted):
    assert quote_argument(argument) == quoted


def test_services_run_as_the_service_user_sandboxed(cpu_config):
    head = cpu_config.head
    units = [ray_unit(head, head, cpu_config.ports, cpu_config.ray, cpu_config.security, VENV), vllm_unit(cpu_config, PLAN, VENV),
             api_front_unit(cpu_config, VENV)]  # fmt: skip
    for unit in units:
        assert "User=ray-vllm" in unit and "Group=ray-vllm" in unit
        for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes"):
            assert line in unit
    assert "StateDirectory=ray-vllm-stack/ray ray-vllm-stack/home ray-vllm-stack/tmp" in units[0]
    # vLLM's engine and the Ray workers on the head meet through ZMQ sockets in the temp dir.
    assert "Environment=TMPDIR=/var/lib/ray-vllm-stack/tmp" in units[0] and "Environment=TMPDIR=/var/lib/ray-vllm-stack/tmp" in units[1]


def test_extra_args_come_before_the_managed_flags(raw_config):
    raw_config["vllm"] = {"extra_args": ["--max-num-seqs=8"]}
    command = vllm_command(load_stack_config(raw_config, set(), REPO_ROOT), PLAN, VENV)
    assert command.index("--max-num-seqs=8") < command.index("--host=127.0.0.1")


def test_api_front_is_the_only_listener_on_the_api_port(cpu_config):
    command = api_front_command(cpu_config, VENV)
    assert flag(command, "listen") == "10.201.0.11:8000"
    assert flag(command, "upstream") == "http://127.0.0.1:8001"
    assert flag(command, "key-file") == "/etc/ray-vllm-stack/secrets/api_front.env"
    assert not any("tls" in argument for argument in command)


def unit_section(unit: str) -> list[str]:
    return unit.split("[Unit]\n", 1)[1].split("\n\n", 1)[0].splitlines()


def test_serving_units_stop_restarting_when_they_keep_crashing(cpu_config):
    """A bad flag must reach `failed` in about a minute (the probe then stops waiting), not loop
    for the whole ready timeout; Restart= stays, so a crash now and then is still recovered."""
    for unit in (vllm_unit(cpu_config, PLAN, VENV), api_front_unit(cpu_config, VENV)):
        lines = unit_section(unit)
        assert f"StartLimitIntervalSec={START_LIMIT_INTERVAL_S}" in lines and f"StartLimitBurst={START_LIMIT_BURST}" in lines
        assert "Restart=on-failure" in unit and "RestartSec=5" in unit
    # restarts closer than a minute apart trip the limit
    assert START_LIMIT_INTERVAL_S / (START_LIMIT_BURST - 1) <= 60


def test_ray_units_restart_forever(cpu_config):
    head, worker = cpu_config.head, cpu_config.hosts[1]
    for host in (head, worker):
        unit = ray_unit(host, head, cpu_config.ports, cpu_config.ray, cpu_config.security, VENV)
        assert "StartLimitIntervalSec=0" in unit_section(unit) and "StartLimitBurst" not in unit
