"""Bytes on the wire, read from the kernel's interface counters around a measurement.

The same counters measure the stack and the by-hand baseline, so their bytes compare directly:

- pushed to a node: what the bridge side of the node's veth pair transmitted (everything the
  node received: payload, ssh and tar framing, Ray traffic from other nodes);
- fetched from the registries: what the controller's outside interface (the one with the default
  route) received. Lab hosts have no route out, so only the controller can fetch anything.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from lab.layout import NAME_PREFIX

NET_DEV = Path("/proc/net/dev")


@dataclass(frozen=True)
class Counters:
    received: dict[str, int]
    transmitted: dict[str, int]


def read_counters(net_dev: str | None = None) -> Counters:
    """rx/tx bytes of every interface, from `/proc/net/dev` (or its text, for tests)."""
    text = NET_DEV.read_text() if net_dev is None else net_dev
    received, transmitted = {}, {}
    for line in text.splitlines()[2:]:
        name, _, fields = line.partition(":")
        values = fields.split()
        if len(values) >= 9:
            received[name.strip()], transmitted[name.strip()] = int(values[0]), int(values[8])
    return Counters(received, transmitted)


def outside_interface() -> str | None:
    """The interface of the default route, or None on a machine without one."""
    route = subprocess.run(["ip", "-o", "route", "show", "default"], capture_output=True, text=True).stdout.split()
    return route[route.index("dev") + 1] if "dev" in route else None


def node_link(host_name: str) -> str:
    """The bridge side of the lab host's veth pair (see `lab.layout.Host.link`)."""
    return NAME_PREFIX + host_name


@dataclass(frozen=True)
class Traffic:
    registry_bytes: int | None
    """Received on the controller's outside interface; None without one."""
    pushed_bytes: dict[str, int]
    """Per lab host: bytes the host received."""

    @property
    def pushed_per_node(self) -> float:
        return sum(self.pushed_bytes.values()) / len(self.pushed_bytes) if self.pushed_bytes else 0.0


class TrafficMeter:
    """`with TrafficMeter(hosts) as meter: ...` then `meter.traffic`."""

    def __init__(self, host_names: list[str]):
        self.host_names = host_names
        self.outside = outside_interface()
        self.traffic: Traffic | None = None

    def __enter__(self) -> TrafficMeter:
        self._before = read_counters()
        return self

    def __exit__(self, *_exc) -> None:
        self.traffic = traffic_between(self._before, read_counters(), self.host_names, self.outside)


def traffic_between(before: Counters, after: Counters, host_names: list[str], outside: str | None) -> Traffic:
    def delta(table: str, name: str) -> int:
        return getattr(after, table).get(name, 0) - getattr(before, table).get(name, 0)

    registry = delta("received", outside) if outside else None
    return Traffic(registry, {name: delta("transmitted", node_link(name)) for name in host_names})
