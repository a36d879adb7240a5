"""The `cloud:` section as the rest of the stack sees it: hosts like the inventory's, the security
group's rules, the tags and the hourly cost. Pure: preview computes all of it before any instance exists.

Each instance of `cloud.groups` becomes a `HostConfig` (named `<group>-<i>`) with the GPUs of its
instance type from the shipped table, so the planner, the parallel-layout checks and the node steps
treat rented and owned hosts alike. Its address is unknown (None) until the instance runs;
`with_addresses` then fills it in, from the addresses the cloud reports.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from ipaddress import IPv4Address

from cloud.aws import STACK_TAG
from cloud.instance_types import PRICE_REGION, PRICE_SOURCE, instance_type, known_types
from stack.config import CloudConfig, Gpu, HostConfig, SshSettings, StackConfig
from stack.firewall import API_CONSUMERS, MEMBERS, RAY_CLIENTS, port_rules

PUBLIC_KEY = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}( [\x21-\x7e ]{0,200})?\n?$")
SSH_PORT = 22
"""Cloud images run sshd on 22; the security group opens it to `cloud.ssh_allow_from` only."""


def group_host_names(cloud: CloudConfig) -> dict[str, list[str]]:
    return {group.name: [f"{group.name}-{index}" for index in range(1, group.count + 1)] for group in cloud.groups}


def cloud_hosts(cloud: CloudConfig) -> list[HostConfig]:
    """One host per instance; `check_cloud` must have passed (every instance type is known)."""
    hosts = []
    names = group_host_names(cloud)
    for group in cloud.groups:
        row = instance_type(group.instance_type)
        gpus = [Gpu(name=row.gpu_name, memory_gb=row.gpu_memory_gb)] * row.gpu_count if row.gpu_count else []
        ssh = SshSettings(user=group.ssh_user, key_file=cloud.private_key_file, host_keys=group.host_keys)
        accelerator = "nvidia" if gpus else "cpu"
        for name in names[group.name]:
            hosts.append(
                HostConfig(
                    name=name, address=None, ssh=ssh, role=group.role, accelerator=accelerator, gpus=gpus,
                    os=group.os, route_out=group.route_out, cloud_group=group.name,
                )  # fmt: skip
            )
    return hosts


def with_cloud_hosts(config: StackConfig) -> StackConfig:
    """The config with the cloud's hosts after the inventory's (validation's last step)."""
    if config.cloud is None:
        return config
    return config.model_copy(update={"hosts": [*config.hosts, *cloud_hosts(config.cloud)]})


def check_cloud(config: StackConfig) -> Iterator[tuple[str, str]]:
    """Problems of the `cloud:` section (config key, message with the fix), before its hosts exist."""
    for index, host in enumerate(config.hosts):
        if host.cloud_group is not None:
            yield f"hosts[{index}].cloud_group", "is set by the stack for hosts of `cloud.groups`; remove it"
        elif host.address is None:
            yield f"hosts[{index}].address", f"required for {host.name}; only hosts of `cloud.groups` get theirs at `up`"
    cloud = config.cloud
    if cloud is None:
        return
    key_file = cloud.public_key_file
    if key_file.suffix != ".pub":
        yield "cloud.public_key_file", f"{key_file} is not a `.pub` file; give the public half of the SSH key"
    elif not key_file.is_file():
        yield "cloud.public_key_file", f"{key_file} does not exist; make a key with `ssh-keygen -t ed25519 -f <path>`"
    elif not PUBLIC_KEY.match(key_file.read_text()):
        yield "cloud.public_key_file", f"{key_file} is not one OpenSSH public key line (ssh-ed25519, ssh-rsa or ecdsa)"
    elif not cloud.private_key_file.is_file():
        yield "cloud.public_key_file", (
            f"its private half {cloud.private_key_file} does not exist; the stack logs in to the instances with it"
        )
    for name, count in Counter(group.name for group in cloud.groups).items():
        if count > 1:
            yield "cloud.groups[].name", f"{name} names {count} groups; give each group its own name"
    for index, group in enumerate(cloud.groups):
        if instance_type(group.instance_type) is None:
            yield f"cloud.groups[{index}].instance_type", (
                f"{group.instance_type} is not in the shipped table, so its GPUs are unknown at preview; use one of: "
                f"{known_types()} (or add its row to cloud/instance_types.py from `aws ec2 describe-instance-types`)"
            )
        if group.role == "head" and group.count != 1:
            yield f"cloud.groups[{index}].count", f"{group.name} is the head's group: its count must be 1 (got {group.count})"


def with_addresses(config: StackConfig, addresses: dict[str, dict[str, str | None]]) -> StackConfig:
    """The config once the instances run: each cloud host's cluster address (`cloud.cluster_network`)
    and, where it differs, the address SSH connects to (the public one when there is one).
    `addresses`: host name -> {"private": ..., "public": ... or None}, as the cloud reports them."""
    if config.cloud is None:
        return config
    network = config.cloud.cluster_network
    hosts = []
    for host in config.hosts:
        if host.cloud_group is None:
            hosts.append(host)
            continue
        found = addresses.get(host.name) or {}
        if not found.get(network):
            raise ValueError(f"{host.name}: the cloud reported no {network} address; the cluster talks over {network} ones")
        ssh_address = found.get("public") or found["private"]
        cluster = IPv4Address(found[network])
        ssh = host.ssh.model_copy(update={"address": None if IPv4Address(ssh_address) == cluster else IPv4Address(ssh_address)})
        hosts.append(host.model_copy(update={"address": cluster, "ssh": ssh}))
    return config.model_copy(update={"hosts": hosts})


def ssh_rules(cloud: CloudConfig) -> list[dict]:
    """SSH from `cloud.ssh_allow_from`: open before the instances launch, since `up` waits for their SSH."""
    cidrs = sorted(str(network) for network in cloud.ssh_allow_from)
    return [{"from_port": SSH_PORT, "to_port": SSH_PORT, "members": False, "purpose": "SSH from the controller",
             "cidrs": cidrs}]  # fmt: skip


def ingress_rules(config: StackConfig, member_addresses: list[str]) -> list[dict]:
    """The security group's rules for the cluster: the stack's ports (`stack.firewall.port_rules`, the
    same table as the host firewall and `required_ports`) from the same sources.

    Members are the group itself (instances talking over private addresses) plus `member_addresses`
    as /32: the inventory's hosts, and the instances' own public addresses when the cluster talks
    over those (EC2 matches a group reference on private addresses only). The group opens every
    port rule on every instance; the host firewall narrows the head-only ones."""
    security = config.security
    sources = {
        MEMBERS: sorted({f"{address}/32" for address in member_addresses}),
        API_CONSUMERS: sorted(str(network) for network in security.api_allow_from),
        RAY_CLIENTS: sorted(str(network) for network in security.ray_clients_from),
    }
    rules = []
    for rule in port_rules(config.ports, security, config.ray):
        if not rule.sources:
            continue
        cidrs = sorted({cidr for source in rule.sources for cidr in sources[source]})
        for low, high in rule.ports:
            rules.append(
                {"from_port": low, "to_port": high, "members": MEMBERS in rule.sources, "purpose": rule.purpose,
                 "cidrs": cidrs}  # fmt: skip
            )
    return rules


def stack_tags(owner: str) -> dict[str, str]:
    """On every resource the stack creates in the cloud: whose it is (`<project>/<stack>`)."""
    return {STACK_TAG: owner}


def hourly_cost(cloud: CloudConfig) -> dict:
    """The `hourly_cost` output: an estimate from the shipped, dated table; spot hosts at On-Demand
    price (an upper bound), and a region other than the table's marked so."""
    per_host = {}
    for group in cloud.groups:
        row = instance_type(group.instance_type)
        for name in group_host_names(cloud)[group.name]:
            per_host[name] = {"instance_type": row.name, "market": group.market, "usd_per_hour": row.hourly_usd}
    notes = []
    if any(group.market == "spot" for group in cloud.groups):
        notes.append("spot hosts at their On-Demand price (an upper bound)")
    if cloud.region != PRICE_REGION:
        notes.append(f"prices are {PRICE_REGION}'s; {cloud.region} may differ")
    return {
        "usd_per_hour": round(sum(host["usd_per_hour"] for host in per_host.values()), 4),
        "hosts": per_host,
        "source": PRICE_SOURCE,
        "notes": notes,
    }
