"""The vLLM OpenAI-compatible service on the head node, spanning the Ray cluster's stages, and the
API front that is its only door.

vLLM is ready only when /health answers and /v1/models lists the served model; the front only when
the same answers come through it with the key. A failed start raises with the last lines of the
unit's journal. The units' specs are plain (a preview shows a changed `max_model_len` or layer split
as such); the API key and the TLS key travel beside them as secret inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.provisioning import NodeStep
from deploys.runner import HostKeyPolicy
from stack.config import StackConfig
from stack.hosts import ssh_target
from stack.serving import ServingPlan
from stack.vllm_unit import api_front_secrets, api_front_spec, endpoint_url, vllm_secrets, vllm_service_spec


@dataclass
class VllmServiceArgs:
    config: StackConfig
    plan: ServingPlan
    api_key: pulumi.Output[str]
    host_keys: HostKeyPolicy
    after: list[pulumi.Resource]
    """The complete Ray cluster and the head's model weights."""
    certificate: pulumi.Output[tuple[str, str]] | None = None
    """(certificate PEM, key PEM) of the API front, with TLS on."""
    sudo_password: pulumi.Output[str] | None = None
    """For a head reached through sudo with a password (a secret)."""


class VllmService(pulumi.ComponentResource):
    endpoint_url: pulumi.Output[str]
    openai_base_url: pulumi.Output[str]

    def __init__(self, name: str, args: VllmServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ray-vllm-stack:index:VllmService", name, None, opts)
        config = args.config
        target = ssh_target(config.head)
        server = NodeStep(
            f"{name}-server", "vllm", target, vllm_service_spec(config, args.plan).model_dump(mode="json"),
            args.host_keys, secrets=pulumi.Output.secret(args.api_key.apply(vllm_secrets)),
            sudo_password=args.sudo_password, opts=pulumi.ResourceOptions(parent=self, depends_on=args.after),
        )  # fmt: skip
        front_secrets = pulumi.Output.all(args.api_key, args.certificate).apply(
            lambda values: api_front_secrets(values[0], values[1] and tuple(values[1]))
        )
        front = NodeStep(
            f"{name}-front", "api-front", target, api_front_spec(config).model_dump(mode="json"),
            args.host_keys, secrets=pulumi.Output.secret(front_secrets), sudo_password=args.sudo_password,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[server]),
        )  # fmt: skip
        self.endpoint_url = front.id.apply(lambda _: endpoint_url(config))
        self.openai_base_url = self.endpoint_url.apply(lambda url: f"{url}/v1")
        self.register_outputs({"endpoint_url": self.endpoint_url, "openai_base_url": self.openai_base_url})
