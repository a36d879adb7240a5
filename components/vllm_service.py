"""The vLLM OpenAI-compatible service on the head node, spanning the Ray cluster's stages.

Ready only when /health answers and /v1/models lists the served model; a failed start raises
with the last lines of the unit's journal.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.config import StackConfig
from components.provisioning import NodeStep
from components.vllm_unit import VLLM_SECRETS_FILE, VLLM_UNIT, ServingPlan, endpoint_url, vllm_secrets_env, vllm_unit
from deploys.runner import HostKeyPolicy
from deploys.specs import ManagedFile, ServiceSpec

READY_TIMEOUT_S = 900
"""Loading weights and, on GPUs, compiling CUDA graphs; the lab's CPU build needs about a minute."""


@dataclass
class VllmServiceArgs:
    config: StackConfig
    plan: ServingPlan
    api_key: pulumi.Output[str]
    host_keys: HostKeyPolicy
    after: list[pulumi.Resource]
    """The complete Ray cluster and the head's model weights."""


def vllm_service_spec(config: StackConfig, plan: ServingPlan, api_key: str) -> dict:
    return ServiceSpec(
        unit=VLLM_UNIT,
        unit_text=vllm_unit(config, plan),
        files=(ManagedFile(path=VLLM_SECRETS_FILE, content=vllm_secrets_env(api_key), mode="600"),),
        probe=("http", "--url", endpoint_url(config), "--model", config.model.served_name),
        probe_env_files=(VLLM_SECRETS_FILE,),
        ready_timeout=READY_TIMEOUT_S,
    ).model_dump(mode="json")


class VllmService(pulumi.ComponentResource):
    endpoint_url: pulumi.Output[str]
    openai_base_url: pulumi.Output[str]

    def __init__(self, name: str, args: VllmServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ray-vllm-stack:index:VllmService", name, None, opts)
        config = args.config
        spec = args.api_key.apply(lambda key: vllm_service_spec(config, args.plan, key))
        service = NodeStep(
            f"{name}-server", "vllm", config.head, pulumi.Output.secret(spec), args.host_keys,
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.after),
        )  # fmt: skip
        self.endpoint_url = service.id.apply(lambda _: endpoint_url(config))
        self.openai_base_url = self.endpoint_url.apply(lambda url: f"{url}/v1")
        self.register_outputs({"endpoint_url": self.endpoint_url, "openai_base_url": self.openai_base_url})
