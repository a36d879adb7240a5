"""Bare-metal hosts from the inventory as Pulumi resources: each host's facts (OS, Python, CPUs,
memory, IPv4 interfaces, NVIDIA GPUs via nvidia-smi), gathered over SSH when the resource is
created and on every `pulumi refresh`, never at `preview`.

    facts = HostFacts("lab1-facts", ssh_target(host), host_keys)
    facts.observed  # {"os", "os_id", "os_version", "python", "cpus", "memory_bytes", "addresses", "nvidia"}
"""

from __future__ import annotations

import pulumi

from components.provisioning import NodeStep
from deploys.runner import HostKeyPolicy, SshTarget


class HostFacts(NodeStep, module="hosts", name="HostFacts"):
    """Read-only: a change in the facts is reported by refresh but never "repaired"."""

    def __init__(
        self,
        name: str,
        host: SshTarget | pulumi.Output[SshTarget],
        host_keys: HostKeyPolicy,
        sudo_password: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(name, "facts", host, None, host_keys, sudo_password=sudo_password, opts=opts)
