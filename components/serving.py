"""What serves the model: the Ray cluster (a head and one worker per other host), vLLM on the head
spanning the cluster's stages, and the API front that is its only door, as one release.

One resource, `ServingRelease`, holds them all because they change together: every Ray node and
vLLM's stages run the same venv, so an upgrade switches the whole cluster and a failed one goes
back as a whole (`deploys.rollout`). Its spec is plain (a preview shows a changed flag or venv as
such); the Ray token, the API key and the TLS key travel beside it as a secret input. Refresh reads
every unit; a unit that stopped or drifted makes the next `up` apply the release again, which
restarts only what differs (and vLLM when a Ray unit restarted under it).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)
from pydantic import ValidationError

from components.provisioning import deploy_code_digest, let_go
from deploys.rollout import Cluster, observe_release, retire_release, roll_out
from deploys.runner import HostKeyPolicy, SshTarget
from deploys.specs import ReleaseSpec
from stack.config import StackConfig
from stack.disclosed import serving_inputs
from stack.firewall import required_ports
from stack.hosts import host_key_policy, ssh_target
from stack.ray_units import dashboard_host
from stack.release import release_secrets, release_spec
from stack.serving import ServingPlan
from stack.vllm_unit import endpoint_url

INPUTS = ("hosts", "host_keys", "spec", "secrets", "sudo_password", "code", "purge_cache")


def cluster_of(props: dict[str, Any]) -> Cluster:
    return Cluster(
        targets={name: SshTarget.model_validate(target) for name, target in props["hosts"].items()},
        host_keys={name: HostKeyPolicy(**policy) for name, policy in props["host_keys"].items()},
        sudo_password=props.get("sudo_password"),
    )


def apply_release(props: dict[str, Any]) -> dict[str, Any]:
    observed = roll_out(cluster_of(props), ReleaseSpec.model_validate(props["spec"]), props["secrets"])
    return {**{key: props.get(key) for key in INPUTS}, "observed": observed, "applied": observed}


class ReleaseProvider(ResourceProvider):
    """Stateless: everything a call needs is in the resource's properties."""

    serialize_as_secret_always = False

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        spec = news.get("spec")
        if isinstance(spec, dict):
            try:
                ReleaseSpec.model_validate(spec)
            except ValidationError as error:
                first = error.errors()[0]
                return CheckResult(news, [CheckFailure("spec", f"{'.'.join(map(str, first['loc']))}: {first['msg']}")])
        return CheckResult(news, [])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changes = [key for key in INPUTS if olds.get(key) != news.get(key)]
        if olds.get("observed") != olds.get("applied"):
            changes.append("observed")
        return DiffResult(changes=bool(changes), replaces=[], stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult("serving", apply_release(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(apply_release(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        observed = observe_release(cluster_of(props), ReleaseSpec.model_validate(props["spec"]))
        return ReadResult(id_, {**props, "observed": observed})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        spec = ReleaseSpec.model_validate(props["spec"])
        unreachable = retire_release(cluster_of(props), spec, bool(props.get("purge_cache")))
        for warning in let_go(unreachable, "the release's units"):
            print(f"warning: {warning}", file=sys.stderr)


class ServingRelease(pulumi.dynamic.Resource, module="provisioning", name="ServingRelease"):
    """Every service unit of the cluster; `observed` is what each host's units looked like last."""

    observed: pulumi.Output[dict]
    applied: pulumi.Output[dict]

    def __init__(
        self,
        name: str,
        config: StackConfig,
        addressed: pulumi.Output[StackConfig],
        spec: pulumi.Output[ReleaseSpec],
        secrets: pulumi.Input[dict],
        sudo_password: pulumi.Input[str] | None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        """`config` decides what is static (hosts, keys, sudo); `addressed` is it with every address known."""
        props = {
            "hosts": addressed.apply(
                lambda known: {host.name: ssh_target(host).model_dump(mode="json") for host in known.hosts}
            ),
            "host_keys": {host.name: dataclasses.asdict(host_key_policy(host)) for host in config.hosts},
            "spec": spec.apply(lambda known: known.model_dump(mode="json")),
            "secrets": secrets,
            "sudo_password": sudo_password if any(host.ssh.uses_sudo for host in config.hosts) else None,
            "code": deploy_code_digest(),
            "purge_cache": config.purge_caches,
            "observed": None,
            "applied": None,
        }
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["secrets", "sudo_password"])
        )
        super().__init__(ReleaseProvider(), name, props, opts)


@dataclass
class ServingArgs:
    config: StackConfig
    plan: ServingPlan
    venv: str
    """The venv of the stack's package set, the one every unit runs."""
    ray_token: pulumi.Output[str]
    api_key: pulumi.Output[str]
    after: list[pulumi.Resource] = field(default_factory=list)
    """Every provisioned node (the release needs their packages and weights)."""
    certificate: pulumi.Output[tuple[str, str]] | None = None
    """(certificate PEM, key PEM) of the API front, with TLS on."""
    sudo_password: pulumi.Output[str] | None = None
    """For hosts reached through sudo with a password (a secret)."""
    addressed: pulumi.Output[StackConfig] | None = None
    """`config` once every host's address is known (`components.cluster_hosts.resolved_config`);
    None: `config` holds them all already."""


def dashboard_url(config: StackConfig) -> str | None:
    if not config.ray.dashboard:
        return None
    return f"http://{dashboard_host(config.head, config.security)}:{config.ports.dashboard}"


class Serving(pulumi.ComponentResource):
    ray_address: pulumi.Output[str]
    dashboard_url: pulumi.Output[str | None]
    required_ports: pulumi.Output[list]
    endpoint_url: pulumi.Output[str]
    openai_base_url: pulumi.Output[str]

    def __init__(self, name: str, args: ServingArgs, opts: pulumi.ResourceOptions | None = None):
        # Its inputs state the plan, the listeners and Ray's auth (`stack.disclosed`) to previews and policies.
        super().__init__("ray-vllm-stack:index:Serving", name, serving_inputs(args.config, args.plan), opts)
        config = args.config
        certificate = args.certificate if args.certificate is not None else pulumi.Output.from_input(None)
        secrets = pulumi.Output.all(args.ray_token, args.api_key, certificate).apply(
            lambda values: release_secrets(values[0], values[1], values[2] and tuple(values[2]))
        )
        addressed = args.addressed if args.addressed is not None else pulumi.Output.from_input(config)
        release = ServingRelease(
            f"{name}-release", config, addressed,
            addressed.apply(lambda known: release_spec(known, args.plan, args.venv)), pulumi.Output.secret(secrets),
            args.sudo_password, opts=pulumi.ResourceOptions(parent=self, depends_on=args.after),
        )  # fmt: skip
        ports = config.ports
        self.ray_address = addressed.apply(lambda known: f"{known.head.address}:{ports.gcs}")
        self.dashboard_url = addressed.apply(lambda known: dashboard_url(known))
        self.required_ports = addressed.apply(
            lambda known: required_ports(known.head, ports, known.security, known.ray)
        )
        self.endpoint_url = pulumi.Output.all(release.id, addressed).apply(lambda values: endpoint_url(values[1]))
        self.openai_base_url = self.endpoint_url.apply(lambda url: f"{url}/v1")
        self.register_outputs(
            {
                "ray_address": self.ray_address,
                "dashboard_url": self.dashboard_url,
                "required_ports": self.required_ports,
                "endpoint_url": self.endpoint_url,
                "openai_base_url": self.openai_base_url,
            }
        )
