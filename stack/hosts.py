"""A configured host as the pyinfra side reaches it: its SSH target and host-key policy."""

from __future__ import annotations

from deploys.runner import LAB_HOST_KEYS, HostKeyPolicy, SshTarget
from stack.config import HostConfig


def ssh_target(host: HostConfig) -> SshTarget:
    return SshTarget(
        name=host.name,
        address=str(host.address),
        user=host.ssh.user,
        port=host.ssh.port,
        key_file=str(host.ssh.key_file),
        sudo=host.ssh.uses_sudo,
    )


def host_key_policy(host: HostConfig) -> HostKeyPolicy:
    """Real hosts keep their keys (first use is recorded); lab hosts get new ones on every `lab up`."""
    return LAB_HOST_KEYS if host.ssh.host_keys == "ignore" else HostKeyPolicy()
