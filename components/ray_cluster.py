"""The Ray cluster: a head and one worker per other host, each a systemd unit tracked by Pulumi.

The head is ready when its own node is alive in GCS; each worker when it has joined with its
resources, so the cluster is ready exactly when every worker resource is. Each unit's spec is plain
(a preview shows a changed port or flag as such); the token travels beside it as a secret input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from components.provisioning import NodeStep
from deploys.runner import HostKeyPolicy
from stack.config import HostConfig, Ports, RaySettings, SecurityConfig
from stack.firewall import required_ports
from stack.hosts import ssh_target
from stack.ray_units import ray_secrets, ray_service_spec


@dataclass
class RayClusterArgs:
    hosts: list[HostConfig]
    head: HostConfig
    ports: Ports
    ray: RaySettings
    security: SecurityConfig
    ray_token: pulumi.Output[str]
    host_keys: dict[str, HostKeyPolicy]
    nodes_ready: dict[str, pulumi.Resource] = field(default_factory=dict)
    """Per host, what must exist before its Ray node starts (its provisioned `Node`)."""
    sudo_password: pulumi.Output[str] | None = None
    """For hosts reached through sudo with a password (a secret)."""


class RayCluster(pulumi.ComponentResource):
    address: pulumi.Output[str]
    dashboard_url: pulumi.Output[str | None]
    required_ports: pulumi.Output[list]
    ready: list[pulumi.Resource]
    """The head and every worker: depend on these to need a complete cluster."""

    def __init__(self, name: str, args: RayClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ray-vllm-stack:index:RayCluster", name, None, opts)
        secrets = pulumi.Output.secret(args.ray_token.apply(ray_secrets))

        def ray_node(host: HostConfig, role: str, after: list[pulumi.Resource]) -> NodeStep:
            spec = ray_service_spec(host, args.head, args.ports, args.ray, args.security).model_dump(mode="json")
            depends = [*after, *filter(None, [args.nodes_ready.get(host.name)])]
            return NodeStep(
                f"{name}-{host.name}", role, ssh_target(host), spec, args.host_keys[host.name], secrets=secrets,
                sudo_password=args.sudo_password, opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
            )  # fmt: skip

        head = ray_node(args.head, "ray-head", [])
        workers = [ray_node(host, "ray-worker", [head]) for host in args.hosts if host.name != args.head.name]
        self.ready = [head, *workers]

        self.address = pulumi.Output.from_input(f"{args.head.address}:{args.ports.gcs}")
        dashboard_host = args.head.address if args.security.dashboard_bind == "cluster" else "127.0.0.1"
        self.dashboard_url = pulumi.Output.from_input(
            f"http://{dashboard_host}:{args.ports.dashboard}" if args.ray.dashboard else None
        )
        self.required_ports = pulumi.Output.from_input(required_ports(args.head, args.ports, args.security, args.ray))
        self.register_outputs(
            {"address": self.address, "dashboard_url": self.dashboard_url, "required_ports": self.required_ports}
        )
