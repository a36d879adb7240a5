"""The cluster's services as one release (`deploys.rollout`): which unit runs where, in which order
they start, and the content of their secret files. Pure: previews and tests render it without hosts."""

from __future__ import annotations

from deploys.specs import ReleaseSpec, ReleaseUnit
from stack.config import StackConfig
from stack.ray_units import ray_secrets, ray_service_spec
from stack.serving import ServingPlan
from stack.vllm_unit import api_front_secrets, api_front_spec, vllm_secrets, vllm_service_spec


def release_spec(config: StackConfig, plan: ServingPlan, venv: str) -> ReleaseSpec:
    """Phases in start order: the Ray head, its workers (together), vLLM, the API front."""
    head = config.head

    def ray(host, role: str) -> ReleaseUnit:
        service = ray_service_spec(host, head, config.ports, config.ray, config.security, venv)
        return ReleaseUnit(host=host.name, role=role, service=service)

    workers = tuple(ray(host, "ray-worker") for host in config.hosts if host.name != head.name)
    phases = [
        (ray(head, "ray-head"),),
        *([workers] if workers else []),
        (ReleaseUnit(host=head.name, role="vllm", service=vllm_service_spec(config, plan, venv)),),
        (ReleaseUnit(host=head.name, role="api-front", service=api_front_spec(config, venv)),),
    ]
    return ReleaseSpec(phases=tuple(phases))


def release_secrets(ray_token: str, api_key: str, certificate: tuple[str, str] | None) -> dict[str, str]:
    """The content of every secret file of the release, by path (each path is one file on its hosts)."""
    return {**ray_secrets(ray_token), **vllm_secrets(api_key), **api_front_secrets(api_key, certificate)}
