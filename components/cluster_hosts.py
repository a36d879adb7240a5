"""Hosts whose addresses Pulumi learns while it runs, fed into the stack's one host model.

The config knows every host's name, role, SSH user and GPUs at preview (the inventory's from the
file, a cloud host's from its instance type), so the planner plans them alike. Only a cloud host's
addresses come later, as Outputs of whatever made the instance: this package's `CloudHosts`
(boto3), or `aws.ec2.Instance`s a user with the pulumi-aws plugin declared themselves
(`HostAddresses.from_aws_instance`). `resolved_config` joins them into the validated config the
node, Ray and vLLM components take, checked again now that the addresses are known.

    hosts = [HostAddresses.from_aws_instance("l40s-1", aws.ec2.Instance("l40s-1", ...))]
    resolved = resolved_config(config, hosts)   # Output[StackConfig], every host with its address
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from stack.cloud import with_addresses
from stack.config import StackConfig
from stack.validation import ConfigError, check_stack


@dataclass(frozen=True)
class HostAddresses:
    """One cloud host of the config (`cloud.groups`), by name, with the addresses its instance got."""

    name: str
    private_address: pulumi.Input[str]
    public_address: pulumi.Input[str | None]

    @classmethod
    def from_aws_instance(cls, name: str, instance: Any) -> HostAddresses:
        """From a pulumi-aws `aws.ec2.Instance` (its `private_ip` and `public_ip` outputs); taken by its
        attributes, so the program needs pulumi-aws only where a user brings it."""
        return cls(name, instance.private_ip, instance.public_ip)


def resolved_config(config: StackConfig, hosts: list[HostAddresses]) -> pulumi.Output[StackConfig]:
    """The config with every cloud host's addresses; stops the run (naming the keys) if they break a rule
    that could not be checked at preview, such as `network.subnet` or two hosts on one address."""
    cloud_names = {host.name for host in config.hosts if host.cloud_group is not None}
    given = {host.name for host in hosts}
    if given != cloud_names:
        raise ValueError(f"addresses given for {sorted(given)}, but the config's cloud hosts are {sorted(cloud_names)}")
    addresses = {host.name: {"private": host.private_address, "public": host.public_address} for host in hosts}

    def resolve(known: dict[str, dict[str, str | None]]) -> StackConfig:
        resolved = with_addresses(config, known)
        problems = [f"{key}: {message}" for key, message in check_stack(resolved)]
        if problems:
            raise pulumi.RunError(str(ConfigError(problems)))
        return resolved

    return pulumi.Output.from_input(addresses).apply(resolve)
