"""What runs a Ray node: the `ray start` command line and its systemd unit, for head and workers.

Pure functions of the stack config: tests render the GPU path here without a GPU.
"""

from __future__ import annotations

import json

from deploys.layout import ENV_FILE, RAY_TEMP_DIR, RAY_TOKEN_FILE, SERVICE_STATE_DIRECTORIES, SERVICE_TMP
from deploys.specs import SecretFile, ServiceSpec
from stack.config import HostConfig, Ports, RaySettings, SecurityConfig
from stack.systemd_unit import ServiceUnit

GIB = 1 << 30
RAY_READY_TIMEOUT_S = 180
HEAD_UNIT = "rvs-ray-head.service"
WORKER_UNIT = "rvs-ray-worker.service"

CPU_STAGE_RESOURCE = "cpu_stage"
"""The custom resource each CPU node offers once; the project's vLLM CPU plugin
(plugins/vllm-ray-cpu, `RAY_RESOURCE`) places one pipeline stage per unit of it."""

RAY_AUTH_ENVIRONMENT = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": RAY_TOKEN_FILE}
"""Token authentication on every Ray process and client; the token file is 0600, the service user's."""

SHARED_TMP_ENVIRONMENT = {"TMPDIR": SERVICE_TMP}
"""Ray's workers (children of the Ray unit) and vLLM's engine (the vLLM unit) share one temp dir."""

NVIDIA_DEVICE_GROUPS = ("video", "render")
"""Groups that own /dev/nvidia* and /dev/dri on distributions that restrict them."""


def device_groups(host: HostConfig) -> tuple[str, ...]:
    return NVIDIA_DEVICE_GROUPS if host.accelerator == "nvidia" else ()


def dashboard_host(head: HostConfig, security: SecurityConfig) -> str:
    """The address the Ray dashboard (and job submission) listens on."""
    return str(head.address) if security.dashboard_bind == "cluster" else "127.0.0.1"


def node_resources(host: HostConfig) -> tuple[list[str], dict[str, float]]:
    """(`ray start` flags, the resources the node must show once alive) for its accelerator."""
    if host.accelerator == "nvidia":
        return [f"--num-gpus={len(host.gpus)}"], {"GPU": float(len(host.gpus))}
    resources = {CPU_STAGE_RESOURCE: 1.0}
    return [f"--resources={json.dumps(resources, separators=(',', ':'))}"], resources


def ray_start_command(
    host: HostConfig, head: HostConfig, ports: Ports, ray: RaySettings, security: SecurityConfig, venv: str
) -> list[str]:
    is_head = host.name == head.name
    command = [f"{venv}/bin/ray", "start", "--block", "--disable-usage-stats", f"--node-ip-address={host.address}"]
    if is_head:
        command += [
            "--head",
            f"--port={ports.gcs}",
            f"--ray-client-server-port={ports.ray_client}",
            f"--include-dashboard={'true' if ray.dashboard else 'false'}",
            f"--dashboard-host={dashboard_host(head, security)}",
            f"--dashboard-port={ports.dashboard}",
        ]
    else:
        command.append(f"--address={head.address}:{ports.gcs}")
    command += [
        f"--node-manager-port={ports.node_manager}",
        f"--object-manager-port={ports.object_manager}",
        f"--dashboard-agent-grpc-port={ports.dashboard_agent_grpc}",
        f"--dashboard-agent-listen-port={ports.dashboard_agent_http}",
        f"--metrics-export-port={ports.metrics_export}",
        f"--runtime-env-agent-port={ports.runtime_env_agent}",
        f"--min-worker-port={ports.min_worker}",
        f"--max-worker-port={ports.max_worker}",
        f"--temp-dir={RAY_TEMP_DIR}",
    ]
    if ray.num_cpus is not None:
        command.append(f"--num-cpus={ray.num_cpus}")
    if ray.memory_gb is not None:
        command.append(f"--memory={int(ray.memory_gb * GIB)}")
    if ray.object_store_gb is not None:
        command.append(f"--object-store-memory={int(ray.object_store_gb * GIB)}")
    command += node_resources(host)[0]
    return command


def metrics_ports_environment(ports: Ports) -> dict[str, str]:
    """Ray's two metrics ports that have no `ray start` flag: pinned, so the firewall knows them."""
    return {"AUTOSCALER_METRIC_PORT": str(ports.autoscaler_metrics), "DASHBOARD_METRIC_PORT": str(ports.dashboard_metrics)}


def ray_unit(
    host: HostConfig, head: HostConfig, ports: Ports, ray: RaySettings, security: SecurityConfig, venv: str
) -> str:
    role = "head" if host.name == head.name else "worker"
    return ServiceUnit(
        description=f"Ray {role} (ray-vllm-stack)",
        command=ray_start_command(host, head, ports, ray, security, venv),
        environment={**RAY_AUTH_ENVIRONMENT, **SHARED_TMP_ENVIRONMENT, **metrics_ports_environment(ports)},
        environment_files=[ENV_FILE],
        # `ray start --block` exits when its node dies; come back and rejoin. No start limit: a
        # worker keeps trying as long as its head is away (the probe still fails fast on a unit
        # that keeps restarting while it waits).
        restart="always",
        start_limit_burst=None,
        user=security.service_user,
        state_directories=SERVICE_STATE_DIRECTORIES,
    ).render()


def ray_service_spec(
    host: HostConfig, head: HostConfig, ports: Ports, ray: RaySettings, security: SecurityConfig, venv: str
) -> ServiceSpec:
    """One Ray node's unit. The token file is among its secret files: its content is not here."""
    gcs = f"{head.address}:{ports.gcs}"
    return ServiceSpec(
        unit=HEAD_UNIT if host.name == head.name else WORKER_UNIT,
        unit_text=ray_unit(host, head, ports, ray, security, venv),
        user=security.service_user,
        venv=venv,
        device_groups=device_groups(host),
        secret_files=(SecretFile(path=RAY_TOKEN_FILE),),
        probe=("ray-node", "--gcs", gcs, "--ip", str(host.address), "--resources", json.dumps(node_resources(host)[1])),
        probe_environment=RAY_AUTH_ENVIRONMENT,
        ready_timeout=RAY_READY_TIMEOUT_S,
        cleanup_paths=(RAY_TEMP_DIR,),
    )


def ray_secrets(token: str) -> dict[str, str]:
    """The content of the Ray units' secret files, by path."""
    return {RAY_TOKEN_FILE: token}
