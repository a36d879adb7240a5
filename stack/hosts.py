"""A configured host as the pyinfra side reaches it: its SSH target and host-key policy."""

from __future__ import annotations

from deploys.runner import LAB_HOST_KEYS, HostKeyPolicy, SshTarget
from stack.config import HostConfig


def ssh_target(host: HostConfig) -> SshTarget:
    """SSH goes to `ssh.address` where set (a cloud host's public address), else the cluster address."""
    address = host.ssh.address or host.address
    if address is None:
        raise ValueError(f"{host.name}: no address yet; a cloud host gets its own once its instance runs")
    return SshTarget(
        name=host.name,
        address=str(address),
        user=host.ssh.user,
        port=host.ssh.port,
        key_file=str(host.ssh.key_file),
        sudo=host.ssh.uses_sudo,
    )


def host_key_policy(host: HostConfig) -> HostKeyPolicy:
    """Real hosts keep their keys (first use is recorded); lab hosts get new ones on every `lab up`."""
    return LAB_HOST_KEYS if host.ssh.host_keys == "ignore" else HostKeyPolicy()
