"""What the program states about its own decisions, as the inputs of its components (`Serving`,
`Node`), so that `pulumi preview --json` shows them to a reviewer (`tools.review`) and a policy pack
(`policy/`) can hold them to rules, with neither recomputing anything.

Stack outputs do not serve: a preview's JSON carries resources' inputs, not the stack's outputs.
Component inputs change nothing on a host, so stating more here never restarts anything. Each value
comes from the function that renders the real thing (the unit's command line, the step table), so
what is stated is what runs.
"""

from __future__ import annotations

from stack.config import StackConfig
from stack.node_steps import NodeInputs, steps_for
from stack.ray_units import HEAD_UNIT, RAY_AUTH_ENVIRONMENT, dashboard_host, ray_secrets
from stack.serving import ServingPlan
from stack.vllm_unit import API_FRONT_UNIT, VLLM_HOST, VLLM_UNIT, api_front_secrets, api_host, vllm_secrets

ALL_INTERFACES = "0.0.0.0"
"""Ray 2.60 binds its GCS and client server on every interface whatever `--node-ip-address` says
(README, Security model); the host firewall is what keeps them to the members."""


def serving_inputs(config: StackConfig, plan: ServingPlan) -> dict:
    """The `Serving` component's inputs: the planner's decision, who listens where, Ray's auth mode,
    and which secret files carry each secret (so a rotation names the units that read it)."""
    return {
        "plan": plan_stated(config, plan),
        "listeners": listeners(config),
        "ray_auth": RAY_AUTH_ENVIRONMENT["RAY_AUTH_MODE"],
        "secret_files": secret_files(),
    }


def secret_files() -> dict[str, list[str]]:
    """Config secret -> the paths of the release's secret files that hold it (paths only)."""
    return {"ray_token": sorted(ray_secrets("")), "api_key": sorted({**vllm_secrets(""), **api_front_secrets("", None)})}


def plan_stated(config: StackConfig, plan: ServingPlan) -> dict:
    """Parallel sizes, layer split and context length; on GPU stacks also each GPU's memory, what the
    plan needs on it and the budget it has (GiB), GPUs in stage order as the planner took them."""
    stated = {
        "pipeline_size": config.parallelism.pipeline_size,
        "tensor_size": config.parallelism.tensor_size,
        "layer_partition": plan.layer_partition,
        "max_model_len": plan.max_model_len,
        "gpus": [],
    }
    capacity = plan.capacity
    if capacity is None:
        return stated
    cards = [(host.name, gpu.name) for host in config.hosts for gpu in host.gpus]
    stated |= {
        "pipeline_size": capacity.pipeline_parallel_size,
        "tensor_size": capacity.tensor_parallel_size,
        "kv_cache_tokens": capacity.kv_cache_tokens,
        "gpu_memory_utilization": capacity.gpu_memory_utilization,
        "quantization": capacity.quantization,
        "gpus": [
            {"host": host, "gpu": name, "stage": gpu.stage, "layers": gpu.layers, "memory_gb": gpu.gpu_memory_gb,
             "needed_gb": gpu.total_gb, "budget_gb": gpu.budget_gb}
            for (host, name), gpu in zip(cards, capacity.per_gpu)
        ],
    }  # fmt: skip
    return stated


def listeners(config: StackConfig) -> list[dict]:
    """Every service's bind address and port on the head, and whether it speaks TLS."""
    head, ports, security = config.head.name, config.ports, config.security

    def listener(service: str, unit: str, address: str, port: int, tls: bool = False) -> dict:
        return {"service": service, "unit": unit, "host": head, "address": address, "port": port, "tls": tls}

    stated = [
        listener("api-front", API_FRONT_UNIT, api_host(config), ports.api, security.tls != "off"),
        listener("vllm", VLLM_UNIT, VLLM_HOST, ports.vllm),
        listener("ray-gcs", HEAD_UNIT, ALL_INTERFACES, ports.gcs),
        listener("ray-client", HEAD_UNIT, ALL_INTERFACES, ports.ray_client),
    ]
    if config.ray.dashboard:
        stated.append(listener("ray-dashboard", HEAD_UNIT, dashboard_host(config.head, security), ports.dashboard))
    return stated


def node_inputs_stated(inputs: NodeInputs) -> dict:
    """The `Node` component's inputs: the host as configured, how its SSH host key is checked, and
    which steps it gets (the firewall's among them unless `security.firewall` is off)."""
    host = inputs.host
    return {
        "address": host.address and str(host.address),  # a rented host has none until its instance runs
        "role": host.role,
        "accelerator": host.accelerator,
        "gpus": [gpu.model_dump() for gpu in host.gpus],
        "os": host.os,
        "lab": host.lab,
        "host_keys": host.ssh.host_keys,
        "steps": [step.name for step in steps_for(inputs)],
    }

