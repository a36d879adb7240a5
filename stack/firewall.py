"""Which TCP ports the stack opens on which nodes and who may reach them: one table of rules that
is both the `required_ports` output (what a user opens in their own firewall) and, per node, the
nftables ruleset of the stack's own host firewall (`security.firewall`).

The ruleset is one table, `inet ray_vllm_stack`, that looks only at the stack's ports: it accepts
them from loopback and from the sources each rule names (the cluster's members, the API's
consumers, Ray clients) and drops them from everyone else. Traffic to any other port is not its
business (sshd and the host's own services keep working), and the host's other tables stay as
they are: loading the ruleset replaces this one table, never the whole ruleset.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from deploys.layout import FIREWALL_TABLE
from stack.config import HostConfig, Ports, RaySettings, SecurityConfig, StackConfig

MEMBERS = "members"
API_CONSUMERS = "api_consumers"
RAY_CLIENTS = "ray_clients"
SOURCE_NAMES = {MEMBERS: "all nodes", API_CONSUMERS: "API consumers", RAY_CLIENTS: "Ray clients"}
"""Who may connect, besides the node itself; a rule with none of them is the node's own (loopback)."""

EPHEMERAL_PORTS = (32768, 60999)
"""Linux's default `net.ipv4.ip_local_port_range`, where a socket bound to port 0 lands. vLLM 0.32's
Ray executor (`RayExecutorV2`, its default) binds its pipeline's sockets there: torch's TCPStore
(`port=0`), the message queues to workers on other nodes (`tcp://<ip>:0`) and every gloo pair (NCCL's
too, on GPUs); none of them can be pinned. The firewall step checks that a node's range lies inside
this one, so no pipeline socket lands on a port the rules do not cover."""

VLLM_PORT_SPAN = 10
"""Ports vLLM takes counting up from `VLLM_PORT` (`ports.vllm_internal`): `get_open_port()` (the
distributed init of the multiprocessing and older Ray executors) and `get_open_ports_list(5)` (data
parallel master ports) both scan upward from it, skipping ports in use."""

PortRange = tuple[int, int]
"""Inclusive."""


@dataclass(frozen=True)
class PortRule:
    purpose: str
    ports: tuple[PortRange, ...]
    sources: frozenset[str]
    """Who may connect besides the node itself (`MEMBERS`, `API_CONSUMERS`, `RAY_CLIENTS`); empty:
    the node's own loopback only."""
    head_only: bool = False

    def exported(self, head: HostConfig) -> dict:
        """The rule as the `required_ports` output shows it."""
        return {
            "ports": format_ports(self.ports),
            "to": "head" if self.head_only else "all nodes",
            "from": ", ".join(SOURCE_NAMES[source] for source in SOURCE_NAMES if source in self.sources),
            "purpose": self.purpose,
            "head": str(head.address),
        }


def port_rules(ports: Ports, security: SecurityConfig, ray: RaySettings) -> tuple[PortRule, ...]:
    """Every TCP port the stack's processes listen on, with who may reach it."""
    members = frozenset({MEMBERS})

    def single(*numbers: int) -> tuple[PortRange, ...]:
        return tuple((number, number) for number in numbers)

    rules = [
        PortRule("Ray GCS", single(ports.gcs), members, head_only=True),
        PortRule(
            "Ray node services (raylet, object manager, dashboard agent, metrics, runtime env agent)",
            single(ports.node_manager, ports.object_manager, ports.dashboard_agent_grpc,
                   ports.dashboard_agent_http, ports.metrics_export, ports.runtime_env_agent),
            members,
        ),  # fmt: skip
        PortRule("Ray workers and drivers", ((ports.min_worker, ports.max_worker),), members),
        # The dashboard process runs (and serves its metrics) even with the dashboard off.
        PortRule(
            "Ray head's metrics (autoscaler, dashboard process)",
            single(ports.autoscaler_metrics, ports.dashboard_metrics),
            members,
            head_only=True,
        ),
        PortRule(
            "vLLM's pipeline: torch's TCPStore, gloo/NCCL pairs and vLLM's message queues bind any free "
            "port in the node's net.ipv4.ip_local_port_range",
            (EPHEMERAL_PORTS,),
            members,
        ),
        PortRule(
            "vLLM's inter-process ports counting up from VLLM_PORT",
            ((ports.vllm_internal, ports.vllm_internal + VLLM_PORT_SPAN - 1),),
            members,
        ),
        PortRule("Ray client server", single(ports.ray_client), members | {RAY_CLIENTS}, head_only=True),
        PortRule(
            "OpenAI-compatible API",
            single(ports.api),
            frozenset() if security.api_bind == "localhost" else frozenset({API_CONSUMERS}),
            head_only=True,
        ),
        PortRule("vLLM's own server, behind the API front", single(ports.vllm), frozenset(), head_only=True),
    ]
    if ray.dashboard:
        dashboard_from = frozenset() if security.dashboard_bind == "localhost" else members | {RAY_CLIENTS}
        rules.append(PortRule("Ray dashboard and job submission", single(ports.dashboard), dashboard_from, head_only=True))
    return tuple(rules)


def required_ports(head: HostConfig, ports: Ports, security: SecurityConfig, ray: RaySettings) -> list[dict]:
    """Which TCP ports must be open between which machines: the rules a user writes in their own
    firewall. Ports only the node itself reaches (loopback) are not among them."""
    return [rule.exported(head) for rule in port_rules(ports, security, ray) if rule.sources]


@dataclass(frozen=True)
class FirewallPolicy:
    """What every node's ruleset is built from; None in `NodeInputs` when `security.firewall` is off."""

    members: tuple[IPv4Address, ...]
    head: IPv4Address
    rules: tuple[PortRule, ...]
    api_allow_from: tuple[IPv4Network, ...]
    ray_clients_from: tuple[IPv4Network, ...]

    def sources(self, source: str) -> tuple[IPv4Network, ...]:
        if source == MEMBERS:
            return tuple(IPv4Network(address) for address in self.members)
        return {API_CONSUMERS: self.api_allow_from, RAY_CLIENTS: self.ray_clients_from}[source]


def firewall_policy(config: StackConfig) -> FirewallPolicy | None:
    security = config.security
    if not security.firewall:
        return None
    return FirewallPolicy(
        members=tuple(host.address for host in config.hosts),
        head=config.head.address,
        rules=port_rules(config.ports, security, config.ray),
        api_allow_from=tuple(security.api_allow_from),
        ray_clients_from=tuple(security.ray_clients_from),
    )


def node_rules(policy: FirewallPolicy, address: IPv4Address) -> tuple[PortRule, ...]:
    """The rules for the ports the node at `address` opens (the head opens more)."""
    return tuple(rule for rule in policy.rules if not rule.head_only or address == policy.head)


def ruleset(policy: FirewallPolicy, host: HostConfig) -> str:
    """The nftables script for one node. Loading it (`nft -f`) replaces the stack's table in one
    transaction, so the rules never lapse, and touches no other table."""
    rules = node_rules(policy, host.address)
    sets, accepts = [], []
    for source in SOURCE_NAMES:
        ports = merge_ranges(port for rule in rules if source in rule.sources for port in rule.ports)
        networks = policy.sources(source)
        if not ports or not networks:
            continue
        sets += _address_set(source, networks)
        accepts.append(f"tcp dport {_port_set(ports)} ip saddr @{source} accept")
    every_port = merge_ranges(port for rule in rules for port in rule.ports)
    role = "head" if host.address == policy.head else "worker"
    lines = [
        f"# ray-vllm-stack's host firewall for {host.name} ({role}): the stack's ports only.",
        "# Written by provisioning; edits are reverted by the next `pulumi up`.",
        f"table inet {FIREWALL_TABLE}",
        f"delete table inet {FIREWALL_TABLE}",
        "",
        f"table inet {FIREWALL_TABLE} {{",
        *(f"\t{line}" for line in sets),
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy accept;",
        '\t\tiif "lo" accept',
        # Replies to the node's own connections (their local ports lie in the ephemeral range).
        "\t\tct state established,related accept",
        *(f"\t\t{line}" for line in accepts),
        f"\t\ttcp dport {_port_set(every_port)} drop",
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _address_set(name: str, networks: tuple[IPv4Network, ...]) -> list[str]:
    elements = ", ".join(str(network.network_address) if network.prefixlen == 32 else str(network) for network in networks)
    flags = [] if all(network.prefixlen == 32 for network in networks) else ["\tflags interval"]
    return [f"set {name} {{", "\ttype ipv4_addr", *flags, f"\telements = {{ {elements} }}", "}"]


def _port_set(ports: list[PortRange]) -> str:
    return "{ " + ", ".join(str(low) if low == high else f"{low}-{high}" for low, high in ports) + " }"


def merge_ranges(ranges: Iterable[PortRange]) -> list[PortRange]:
    """Sorted, with overlapping and adjacent ranges joined (nftables refuses overlapping set elements)."""
    merged: list[PortRange] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def format_ports(ranges: Iterable[PortRange]) -> str:
    """`6380,6381,10002-10100`: the `ports` field of `required_ports`."""
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in ranges)


def parse_ports(text: str) -> list[PortRange]:
    """The inverse of `format_ports`."""
    ranges = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        ranges.append((int(low), int(high or low)))
    return ranges


def covers(ranges: Iterable[PortRange], port: int) -> bool:
    return any(low <= port <= high for low, high in ranges)
