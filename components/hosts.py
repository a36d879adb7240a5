"""Bare-metal hosts from the inventory as Pulumi resources: each host's facts (OS, Python, CPUs,
memory, IPv4 interfaces, NVIDIA GPUs via nvidia-smi), gathered over SSH when the resource is
created and on every `pulumi refresh`, never at `preview`.

    facts = HostFacts("lab1-facts", host, host_keys)
    facts.observed  # {"os", "os_id", "os_version", "python", "cpus", "memory_bytes", "addresses", "nvidia"}
"""

from __future__ import annotations

import pulumi

from components.config import HostConfig
from components.provisioning import NodeStep
from deploys.runner import LAB_HOST_KEYS, HostKeyPolicy


class HostFacts(NodeStep, module="hosts", name="HostFacts"):
    """Read-only: a change in the facts is reported by refresh but never "repaired"."""

    def __init__(
        self, name: str, host: HostConfig, host_keys: HostKeyPolicy, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(name, "facts", host, None, host_keys, opts=opts)


def host_key_policy(host: HostConfig) -> HostKeyPolicy:
    """Real hosts keep their keys (first use is recorded); lab hosts get new ones on every `lab up`."""
    return LAB_HOST_KEYS if host.ssh.host_keys == "ignore" else HostKeyPolicy()
