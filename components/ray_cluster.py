"""The Ray cluster: a head and one worker per other host, each a systemd unit tracked by Pulumi.

The head is ready when its own node is alive in GCS; each worker when it has joined with its
resources, so the cluster is ready exactly when every worker resource is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi

from components.config import HostConfig, Ports, RaySettings, SecurityConfig
from components.provisioning import NodeStep
from components.ray_units import (
    HEAD_UNIT,
    RAY_AUTH_ENVIRONMENT,
    RAY_TEMP_DIR,
    RAY_TOKEN_FILE,
    WORKER_UNIT,
    node_resources,
    ray_unit,
    required_ports,
)
from deploys.runner import HostKeyPolicy
from deploys.specs import ManagedFile, ServiceSpec

READY_TIMEOUT_S = 180


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


def ray_service_spec(host: HostConfig, args: RayClusterArgs, token: str) -> dict:
    gcs = f"{args.head.address}:{args.ports.gcs}"
    is_head = host.name == args.head.name
    return ServiceSpec(
        unit=HEAD_UNIT if is_head else WORKER_UNIT,
        unit_text=ray_unit(host, args.head, args.ports, args.ray, args.security),
        files=(ManagedFile(path=RAY_TOKEN_FILE, content=token, mode="600"),),
        probe=("ray-node", "--gcs", gcs, "--ip", str(host.address), "--resources", json.dumps(node_resources(host)[1])),
        probe_environment=RAY_AUTH_ENVIRONMENT,
        ready_timeout=READY_TIMEOUT_S,
        cleanup_paths=(RAY_TEMP_DIR,),
    ).model_dump(mode="json")


class RayCluster(pulumi.ComponentResource):
    address: pulumi.Output[str]
    dashboard_url: pulumi.Output[str | None]
    required_ports: pulumi.Output[list]
    ready: list[pulumi.Resource]
    """The head and every worker: depend on these to need a complete cluster."""

    def __init__(self, name: str, args: RayClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ray-vllm-stack:index:RayCluster", name, None, opts)

        def ray_node(host: HostConfig, role: str, after: list[pulumi.Resource]) -> NodeStep:
            spec = args.ray_token.apply(lambda token: ray_service_spec(host, args, token))
            depends = [*after, *filter(None, [args.nodes_ready.get(host.name)])]
            return NodeStep(
                f"{name}-{host.name}", role, host, pulumi.Output.secret(spec), args.host_keys[host.name],
                opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
            )  # fmt: skip

        head = ray_node(args.head, "ray-head", [])
        workers = [ray_node(host, "ray-worker", [head]) for host in args.hosts if host.name != args.head.name]
        self.ready = [head, *workers]

        self.address = pulumi.Output.from_input(f"{args.head.address}:{args.ports.gcs}")
        dashboard_host = args.head.address if args.security.dashboard_bind == "cluster" else "127.0.0.1"
        self.dashboard_url = pulumi.Output.from_input(
            f"http://{dashboard_host}:{args.ports.dashboard}" if args.ray.dashboard else None
        )
        self.required_ports = pulumi.Output.from_input(
            required_ports(args.head, args.ports, args.security.api_bind)
        )
        self.register_outputs(
            {"address": self.address, "dashboard_url": self.dashboard_url, "required_ports": self.required_ports}
        )
