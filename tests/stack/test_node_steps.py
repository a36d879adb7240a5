"""Which releases' .debs the controller fetches, and what each node's system-packages step asks for."""

from __future__ import annotations

from artifacts.debs import DebFile, DebFiles
from stack.config import HostConfig, NetworkConfig
from stack.node_steps import SYSTEM_PACKAGES, NodeInputs, pushed_release, pushed_releases, system_packages_spec


def host(name: str, os: str | None, route_out: bool) -> HostConfig:
    return HostConfig(name=name, address="10.0.0.1", ssh={"key_file": "/dev/null"}, role="worker", accelerator="cpu",
                      os=os, route_out=route_out)  # fmt: skip


def test_debs_are_fetched_once_per_release_of_hosts_without_a_route_out():
    hosts = [
        host("a", "debian-13", route_out=False),
        host("b", "debian-12", route_out=False),
        host("c", "debian-13", route_out=False),
        host("d", "ubuntu-24.04", route_out=True),
        host("e", None, route_out=True),
    ]
    assert pushed_releases(hosts) == ["debian-12", "debian-13"]
    assert [pushed_release(h) for h in hosts] == ["debian-13", "debian-12", "debian-13", None, None]
    # Every host with a route out: nothing to fetch, the controller never calls apt.
    assert pushed_releases(hosts[3:]) == []


def test_system_packages_are_pushed_debs_of_the_release_or_names_for_the_nodes_sources():
    debs = DebFiles(
        release="debian-13", debs_dir="/c/.cache/debs/debian-13/pool", packages=SYSTEM_PACKAGES,
        debs={"nftables": DebFile(file="nftables_1.1.3-1_amd64.deb", version="1.1.3-1", depends=("libnftables1",))},
    )  # fmt: skip
    pushed = system_packages_spec(NodeInputs(host("a", "debian-13", route_out=False), NetworkConfig(), "m", debs=debs))
    assert (pushed.release, pushed.debs_dir, list(pushed.debs)) == ("debian-13", debs.debs_dir, ["nftables"])
    pulled = system_packages_spec(NodeInputs(host("b", "debian-13", route_out=True), NetworkConfig(), "m", debs=debs))
    assert pulled.model_dump() == {"packages": SYSTEM_PACKAGES, "release": None, "debs_dir": None, "debs": None, "proxy": None}
