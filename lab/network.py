"""The lab's network: one bridge in the machine's namespace, one netns + veth pair per host.

The bridge carries the controller's address (.1), so the controller reaches every host
directly. Hosts get no default route and the machine does no forwarding or NAT: nothing on a
host can reach past the bridge.
"""

import ipaddress
import json
from pathlib import Path

from lab.commands import run, succeeds
from lab.errors import LabError
from lab.layout import BRIDGE, NAME_PREFIX, Host, LabSpec

HOST_INTERFACE = "eth0"
_IFF_UP = 0x1
_IPV6 = Path("/proc/sys/net/ipv6")


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def _disable_ipv6(link: str) -> None:
    """No IPv6 link-local chatter on the lab's links: the lab speaks only its IPv4 subnet."""
    if _IPV6.exists():
        (_IPV6 / "conf" / link / "disable_ipv6").write_text("1")


def check_subnet_free(spec: LabSpec) -> None:
    """Refuse a subnet that overlaps an address or route of any interface the lab did not make."""
    lab_net = spec.network
    for entry in json.loads(run(["ip", "-j", "-4", "addr", "show"], what="list addresses")):
        if entry["ifname"] == BRIDGE:
            continue
        for address in entry.get("addr_info", []):
            other = ipaddress.IPv4Interface(f"{address['local']}/{address['prefixlen']}").network
            if other.overlaps(lab_net):
                raise LabError(f"subnet {spec.subnet} clashes with {entry['ifname']} ({address['local']}/"
                               f"{address['prefixlen']}): pick a free one with --subnet")
    for route in json.loads(run(["ip", "-j", "-4", "route", "show"], what="list routes")):
        if route.get("dev") == BRIDGE or route["dst"] == "default":
            continue
        if ipaddress.IPv4Network(route["dst"], strict=False).overlaps(lab_net):
            raise LabError(f"subnet {spec.subnet} clashes with the route to {route['dst']} via "
                           f"{route.get('dev', '?')}: pick a free one with --subnet")


def ensure_bridge(spec: LabSpec) -> None:
    if not _link_exists(BRIDGE):
        run(["ip", "link", "add", BRIDGE, "type", "bridge"], what="create the lab bridge")
        _disable_ipv6(BRIDGE)
    run(["ip", "addr", "replace", spec.bridge_interface, "dev", BRIDGE], what="address the lab bridge")
    run(["ip", "link", "set", BRIDGE, "up"], what="bring the lab bridge up")


def ensure_host_link(host: Host, spec: LabSpec) -> None:
    """The host's netns with `eth0` plugged into the bridge and addressed; kept as is if present."""
    if not Path("/run/netns", host.netns).exists():
        run(["ip", "netns", "add", host.netns], what=f"create netns for {host.name}")
        if _IPV6.exists():
            run(["ip", "netns", "exec", host.netns, "sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"],
                what=f"disable IPv6 on {host.name}'s new links")
    if not _link_exists(host.link):
        if succeeds(["ip", "-n", host.netns, "link", "show", HOST_INTERFACE]):
            run(["ip", "-n", host.netns, "link", "del", HOST_INTERFACE], what=f"remove {host.name}'s stale eth0")
        run(["ip", "link", "add", host.link, "type", "veth", "peer", "name", HOST_INTERFACE, "netns", host.netns],
            what=f"create {host.name}'s veth pair")
        _disable_ipv6(host.link)
        run(["ip", "link", "set", host.link, "master", BRIDGE, "up"], what=f"plug {host.name} into the bridge")
    prefix = f"{host.address}/{spec.network.prefixlen}"
    run(["ip", "-n", host.netns, "addr", "replace", prefix, "dev", HOST_INTERFACE], what=f"address {host.name}")
    for link in ("lo", HOST_INTERFACE):
        run(["ip", "-n", host.netns, "link", "set", link, "up"], what=f"bring {host.name}'s {link} up")


def isolate(host: Host) -> None:
    """Cut the host's link: the host sees its cable pulled, nothing reaches it or leaves it."""
    run(["ip", "link", "set", host.link, "down"], what=f"isolate {host.name}")


def reconnect(host: Host) -> None:
    run(["ip", "link", "set", host.link, "up"], what=f"reconnect {host.name}")


def connected(host: Host) -> bool:
    try:
        return bool(int(Path("/sys/class/net", host.link, "flags").read_text(), 16) & _IFF_UP)
    except FileNotFoundError:
        return False


def lab_netns() -> list[str]:
    names = [line.split()[0] for line in run(["ip", "netns", "list"], what="list netns").splitlines() if line]
    return [name for name in names if name.startswith(NAME_PREFIX)]


def lab_links() -> list[str]:
    return sorted(path.name for path in Path("/sys/class/net").iterdir() if path.name.startswith(NAME_PREFIX))


def remove_all() -> None:
    """Delete every lab link and netns, found by name so a crashed or half-done `up` is cleaned too."""
    for link in lab_links():
        if link != BRIDGE and _link_exists(link):  # deleting one end of a veth removes both
            run(["ip", "link", "del", link], what=f"delete link {link}")
    if _link_exists(BRIDGE):
        run(["ip", "link", "del", BRIDGE], what="delete the lab bridge")
    for netns in lab_netns():
        run(["ip", "netns", "del", netns], what=f"delete netns {netns}")
