"""Rented GPU hosts on AWS as Pulumi resources: the stack's key pair, its security group and rules,
and one instance per host of `cloud.groups`, each a thin dynamic provider over `cloud.aws`.

    cloud = CloudHosts("cloud", CloudHostsArgs(config=config, owner="ray-vllm-stack/aws-pair"))
    cloud.hosts          # [HostAddresses]: what `components.cluster_hosts.resolved_config` takes
    cloud.instance_ids   # {host: instance id}

State holds the region, the endpoint, ids, addresses and the public key: never a credential
(boto3's default chain finds those in the provider's process). Every resource carries the
`ray-vllm-stack:stack` tag. An instance waits until EC2 runs it and its SSH port answers
(`cloud.ssh_wait_s`); `destroy` terminates it and waits until EC2 says terminated, else fails
naming the instance ids, so nothing is left running (and billed) silently.

Two hooks for a harness that pairs moto's instances with real (lab) hosts: `address_map` (an
address the cloud reports -> the address to use instead) and the SSH wait's length.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult

from cloud.aws import (
    Endpoint,
    InstanceSpec,
    create_security_group,
    delete_key_pair,
    delete_security_group,
    describe_instance,
    import_key_pair,
    run_instance,
    set_ingress,
    set_tags,
    terminate_instances,
    vpc_of,
    wait_for_ssh,
    wait_running,
)
from components.cluster_hosts import HostAddresses
from stack.cloud import SSH_PORT, ingress_rules, ssh_rules, stack_tags
from stack.config import StackConfig

ENDPOINT_KEYS = ("region", "endpoint_url")
INSTANCE_REPLACES = (*ENDPOINT_KEYS, "name", "instance_type", "image", "disk_gb", "subnet_id", "market", "key_name",
                     "security_group_id")  # fmt: skip
"""Inputs EC2 cannot change on a running instance (a new type means a new instance here: a stopped GPU
instance is not what a serving cluster wants); `tags`, `ssh_wait_s` and `address_map` update in place."""


ADDRESS_MAP_VARIABLE = "RVS_CLOUD_ADDRESS_MAP"
"""A JSON file `{"<host name or address the cloud reports>": "<address to use>"}`: how a test harness
points the instances moto launches (which boot nothing) at lab hosts that do answer SSH. A host name
(`l40s-1`) replaces both of that instance's addresses, known before `up`; an address only itself.
Unset for real clouds."""

HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def address_map_from(environ: Mapping[str, str]) -> dict[str, str]:
    path = environ.get(ADDRESS_MAP_VARIABLE)
    if not path:
        return {}
    mapping = json.loads(Path(path).read_text())
    # Only names and addresses: they land in state and in every host's SSH target.
    return {
        source if HOST_NAME.match(source) else str(IPv4Address(source)): str(IPv4Address(target))
        for source, target in mapping.items()
    }


def _endpoint(props: dict[str, Any]) -> Endpoint:
    return Endpoint(props["region"], props.get("endpoint_url"))


def _tags(props: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((props.get("tags") or {}).items())


def _changed(olds: dict[str, Any], news: dict[str, Any], keys) -> list[str]:
    return [key for key in keys if olds.get(key) != news.get(key)]


class KeyPairProvider(ResourceProvider):
    """The public half of the stack's SSH key, imported once; any change makes a new key pair."""

    serialize_as_secret_always = False
    KEYS = (*ENDPOINT_KEYS, "key_name", "public_key", "tags")

    def create(self, props: dict[str, Any]) -> CreateResult:
        key_pair_id = import_key_pair(_endpoint(props), props["key_name"], props["public_key"], _tags(props))
        return CreateResult(props["key_name"], {**props, "key_pair_id": key_pair_id})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changes = _changed(olds, news, self.KEYS)
        return DiffResult(changes=bool(changes), replaces=changes, stables=[], delete_before_replace=True)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        delete_key_pair(_endpoint(props), props["key_name"])


class SecurityGroupProvider(ResourceProvider):
    """The group itself, in the subnet's VPC (the default VPC without one); its rules are `IngressProvider`'s."""

    serialize_as_secret_always = False
    KEYS = (*ENDPOINT_KEYS, "group_name", "subnet_id", "tags")

    def create(self, props: dict[str, Any]) -> CreateResult:
        endpoint = _endpoint(props)
        vpc_id = vpc_of(endpoint, props.get("subnet_id"))
        description = f"ray-vllm-stack {props['tags'].get('ray-vllm-stack:stack', '')}: the cluster's ports and SSH"
        group_id = create_security_group(endpoint, props["group_name"], vpc_id, description, _tags(props))
        return CreateResult(group_id, {**props, "group_id": group_id, "vpc_id": vpc_id})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changes = _changed(olds, news, self.KEYS)
        return DiffResult(changes=bool(changes), replaces=changes, stables=[], delete_before_replace=True)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        delete_security_group(_endpoint(props), id_)


class IngressProvider(ResourceProvider):
    """The group's ingress rules (`stack.cloud.ingress_rules`), a resource of their own because they may
    name the instances' public addresses, which exist only after the instances (that use the group)."""

    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        set_ingress(_endpoint(props), props["group_id"], [], props["rules"])
        return CreateResult(f"{props['group_id']}-ingress", props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = _changed(olds, news, (*ENDPOINT_KEYS, "group_id"))
        changes = replaces + _changed(olds, news, ("rules",))
        return DiffResult(changes=bool(changes), replaces=replaces, stables=[], delete_before_replace=True)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        set_ingress(_endpoint(news), news["group_id"], olds["rules"], news["rules"])
        return UpdateResult(news)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        set_ingress(_endpoint(props), props["group_id"], props["rules"], [])


def instance_outputs(props: dict[str, Any], instance) -> dict[str, Any]:
    """What the stack uses of a running instance: its addresses after `address_map`, and as reported."""
    mapping = props.get("address_map") or {}
    reported = {"private": instance.private_address, "public": instance.public_address}
    if props["name"] in mapping:  # the host stands in for the instance: one address, both roles
        mapped = dict.fromkeys(("private", "public"), mapping[props["name"]])
    else:
        mapped = {kind: mapping.get(address, address) if address else None for kind, address in reported.items()}
    return {
        **props,
        "instance_id": instance.instance_id,
        "private_address": mapped["private"],
        "public_address": mapped["public"],
        "reported_addresses": reported,
    }


class InstanceProvider(ResourceProvider):
    """One EC2 instance: launched, waited for (running, then SSH), terminated and waited for on delete."""

    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        endpoint = _endpoint(props)
        spec = InstanceSpec(
            name=props["name"], instance_type=props["instance_type"], image=props["image"], disk_gb=int(props["disk_gb"]),
            key_name=props["key_name"], security_group_id=props["security_group_id"], subnet_id=props.get("subnet_id"),
            spot=props["market"] == "spot", tags=tuple(_tags(props)),
        )  # fmt: skip
        instance_id = run_instance(endpoint, spec)
        try:
            outs = instance_outputs(props, wait_running(endpoint, instance_id))
            wait_for_ssh(outs["public_address"] or outs["private_address"], SSH_PORT, float(props["ssh_wait_s"]))
        except Exception:
            # Not recorded in state if create fails: terminate it now rather than leave it billed unseen.
            terminate_instances(endpoint, [instance_id])
            raise
        return CreateResult(instance_id, outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = _changed(olds, news, INSTANCE_REPLACES)
        changes = replaces + _changed(olds, news, ("tags", "ssh_wait_s", "address_map"))
        # GPU quotas seldom fit the old and the new instance at once: the old one goes first.
        return DiffResult(changes=bool(changes), replaces=replaces, stables=[], delete_before_replace=True)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        endpoint = _endpoint(news)
        set_tags(endpoint, id_, olds.get("tags") or {}, news.get("tags") or {})
        instance = describe_instance(endpoint, id_)
        if instance is None:
            raise RuntimeError(f"updating {news['name']}: instance {id_} is gone; run `pulumi refresh`, then `up`")
        return UpdateResult(instance_outputs(news, instance))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        instance = describe_instance(_endpoint(props), id_)
        if instance is None or instance.state in ("shutting-down", "terminated"):
            return ReadResult(None, {})  # gone: refresh drops it, the next `up` launches a new one
        return ReadResult(id_, {**instance_outputs(props, instance), "instance_type": instance.instance_type})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        terminate_instances(_endpoint(props), [id_])


class AwsKeyPair(pulumi.dynamic.Resource, module="cloud", name="AwsKeyPair"):
    key_name: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(KeyPairProvider(), name, {**props, "key_pair_id": None}, opts)


class AwsSecurityGroup(pulumi.dynamic.Resource, module="cloud", name="AwsSecurityGroup"):
    group_id: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(SecurityGroupProvider(), name, {**props, "group_id": None, "vpc_id": None}, opts)


class AwsIngress(pulumi.dynamic.Resource, module="cloud", name="AwsIngress"):
    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(IngressProvider(), name, props, opts)


class AwsInstance(pulumi.dynamic.Resource, module="cloud", name="AwsInstance"):
    instance_id: pulumi.Output[str]
    private_address: pulumi.Output[str]
    public_address: pulumi.Output[str | None]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        outputs = dict.fromkeys(("instance_id", "private_address", "public_address", "reported_addresses"))
        super().__init__(InstanceProvider(), name, {**props, **outputs}, opts)


@dataclass
class CloudHostsArgs:
    config: StackConfig
    """Validated: its `hosts` hold the cloud's (`cloud_group` set), with the inventory's before them."""
    owner: str
    """`<project>/<stack>`: the stack tag, and the key pair's and group's names."""
    address_map: dict[str, str] = field(default_factory=dict)
    """An address the cloud reports -> the one to use instead (a harness's lab host); empty for real clouds."""


class CloudHosts(pulumi.ComponentResource):
    hosts: list[HostAddresses]
    instance_ids: pulumi.Output[dict]
    security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: CloudHostsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ray-vllm-stack:index:CloudHosts", name, None, opts)
        config, cloud = args.config, args.config.cloud
        child = pulumi.ResourceOptions(parent=self)
        endpoint = {"region": cloud.region, "endpoint_url": cloud.endpoint_url}
        tags = stack_tags(args.owner)
        resource_name = args.owner.replace("/", "-")
        key_pair = AwsKeyPair(
            f"{name}-key-pair",
            {**endpoint, "key_name": resource_name, "public_key": cloud.public_key_file.read_text().strip(), "tags": tags},
            child,
        )  # fmt: skip
        subnets = {group.subnet_id for group in cloud.groups}
        group = AwsSecurityGroup(
            f"{name}-security-group",
            {**endpoint, "group_name": resource_name, "subnet_id": next(iter(subnets)) if len(subnets) == 1 else None,
             "tags": tags},
            child,
        )  # fmt: skip
        ssh = AwsIngress(f"{name}-ssh", {**endpoint, "group_id": group.group_id, "rules": ssh_rules(cloud)}, child)
        launch = pulumi.ResourceOptions(parent=self, depends_on=[ssh])  # `up` waits for each instance's SSH
        groups = {group_config.name: group_config for group_config in cloud.groups}
        instances: dict[str, AwsInstance] = {}
        for host in config.hosts:
            if host.cloud_group is None:
                continue
            settings = groups[host.cloud_group]
            instances[host.name] = AwsInstance(
                f"{name}-{host.name}",
                {**endpoint, "name": host.name, "instance_type": settings.instance_type, "image": settings.image,
                 "disk_gb": settings.disk_gb, "subnet_id": settings.subnet_id, "market": settings.market,
                 "key_name": key_pair.key_name, "security_group_id": group.group_id,
                 "tags": {**settings.tags, **tags}, "ssh_wait_s": cloud.ssh_wait_s, "address_map": args.address_map},
                launch,
            )  # fmt: skip
        inventory = [str(host.address) for host in config.hosts if host.cloud_group is None]
        public = cloud.cluster_network == "public"
        members = pulumi.Output.all(*(instance.public_address for instance in instances.values() if public))
        AwsIngress(
            f"{name}-cluster-ingress",
            {**endpoint, "group_id": group.group_id,
             "rules": members.apply(lambda addresses: ingress_rules(config, [*inventory, *filter(None, addresses)]))},
            child,
        )  # fmt: skip
        self.hosts = [
            HostAddresses(host_name, instance.private_address, instance.public_address)
            for host_name, instance in instances.items()
        ]
        self.instance_ids = pulumi.Output.all(**{n: i.instance_id for n, i in instances.items()})
        self.security_group_id = group.group_id
        self.register_outputs({"instance_ids": self.instance_ids, "security_group_id": self.security_group_id})
