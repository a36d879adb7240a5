"""A node's runtime environment: which interface carries cluster traffic, and the variables that
make GLOO, NCCL and vLLM use it. Pure functions; the operation feeds them the node's addresses.

Ray and vLLM pick an interface by themselves (often the wrong one on multi-homed hosts, and none
at all without a default route), so each node states it explicitly.
"""

from __future__ import annotations

import re

from deploys.specs import RuntimeEnvSpec

_PLAIN = re.compile(r"^[A-Za-z0-9_./:@+-]*$")


def interface_for(address: str, addresses: list[dict]) -> str | None:
    """The interface holding `address`, from `Ipv4Addresses` fact data."""
    return next((entry["interface"] for entry in addresses if entry["address"] == address), None)


def runtime_env(spec: RuntimeEnvSpec, addresses: list[dict]) -> dict[str, str]:
    """The variables for this node; raises ValueError when no interface holds its address."""
    interface = spec.interface or interface_for(spec.address, addresses)
    if interface is None:
        held = ", ".join(f"{entry['interface']}={entry['address']}" for entry in addresses) or "none"
        raise ValueError(
            f"no interface holds the cluster address {spec.address} (IPv4 addresses: {held}); "
            "fix the host's address in the inventory or set network.interface"
        )
    env = {"GLOO_SOCKET_IFNAME": interface, "NCCL_SOCKET_IFNAME": interface, "VLLM_HOST_IP": spec.address}
    if spec.nccl_ib_disable:
        env["NCCL_IB_DISABLE"] = "1"
    env.update(spec.overrides)
    return env


def render_env_file(env: dict[str, str]) -> str:
    """systemd `EnvironmentFile=` syntax (also sourceable by sh); values quoted only when needed."""
    lines = ["# Written by ray-vllm-stack provisioning; edits are reverted by the next `pulumi up`."]
    for key, value in sorted(env.items()):
        lines.append(f"{key}={value}" if _PLAIN.match(value) else f'{key}="{_escape(value)}"')
    return "\n".join(lines) + "\n"


def parse_env_file(lines: list[str]) -> dict[str, str]:
    env = {}
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            env[key] = value
    return env


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
