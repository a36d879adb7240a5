"""What a lab of N hosts looks like: names, addresses and interface names, derived from a few inputs."""

import ipaddress
import re
from dataclasses import dataclass

from lab.errors import LabError

DEFAULT_SUBNET = "10.201.0.0/24"
DEFAULT_SHM_SIZE = "4g"
MAX_HOSTS = 8
RELEASES = {"bookworm": "debian-12", "trixie": "debian-13"}
"""The Debian suites a lab host can run, with the OS name the stack's inventory gives them."""
DEFAULT_RELEASES = ("bookworm", "trixie")
"""Cycled over the hosts: the head on Debian 12, a worker on Debian 13, and so on alternating."""
BRIDGE = "rvs-br0"
NAME_PREFIX = "rvs-"  # every interface and netns the lab makes starts with this
_BRIDGE_OFFSET = 1
_FIRST_HOST_OFFSET = 11
_SIZE = re.compile(r"^[1-9][0-9]*[kmg]?$")


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    role: str
    release: str = DEFAULT_RELEASES[0]

    @property
    def os(self) -> str:
        """The host's OS as the stack's inventory names it (debian-12, debian-13)."""
        return RELEASES[self.release]

    @property
    def netns(self) -> str:
        return NAME_PREFIX + self.name

    @property
    def link(self) -> str:
        """The bridge side of the host's veth pair; the host side is `eth0` inside its netns."""
        return NAME_PREFIX + self.name


@dataclass(frozen=True)
class LabSpec:
    """The inputs of `up`: every other name and address follows from them."""

    host_count: int = 2
    subnet: str = DEFAULT_SUBNET
    shm_size: str = DEFAULT_SHM_SIZE
    releases: tuple[str, ...] = DEFAULT_RELEASES
    """Debian suite per host, cycled when shorter than the hosts (one suite: every host runs it)."""

    def __post_init__(self):
        object.__setattr__(self, "releases", tuple(self.releases))  # a list when read back from lab.json
        if not 1 <= self.host_count <= MAX_HOSTS:
            raise LabError(f"--hosts must be between 1 and {MAX_HOSTS} (got {self.host_count})")
        try:
            network = ipaddress.IPv4Network(self.subnet)
        except ValueError as error:
            raise LabError(f"--subnet must be an IPv4 network such as {DEFAULT_SUBNET} "
                           f"(got {self.subnet!r}: {error})") from None
        if _FIRST_HOST_OFFSET + self.host_count >= network.num_addresses:
            raise LabError(f"--subnet {self.subnet} is too small for {self.host_count} hosts "
                           f"at .{_FIRST_HOST_OFFSET} onwards: use a /27 or larger")
        if not _SIZE.match(self.shm_size.lower()):
            raise LabError(f"--shm-size must be a size such as 4g or 512m (got {self.shm_size!r})")
        unknown = [release for release in self.releases if release not in RELEASES]
        if unknown or not self.releases:
            raise LabError(f"--releases must be a comma-separated list of {', '.join(RELEASES)} "
                           f"(got {','.join(self.releases)!r})")
        # The default pair also serves a one-host lab; a list someone typed must fit the hosts.
        if len(self.releases) > self.host_count and self.releases != DEFAULT_RELEASES:
            raise LabError(f"--releases names {len(self.releases)} releases for {self.host_count} hosts: "
                           "give at most one per host (they are cycled over the hosts)")

    def __str__(self) -> str:
        return (f"{self.host_count} hosts ({', '.join(h.release for h in self.hosts)}) on {self.subnet} "
                f"with a {self.shm_size} /dev/shm each")

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def bridge_address(self) -> str:
        """The controller's end of the lab."""
        return str(self.network[_BRIDGE_OFFSET])

    @property
    def bridge_interface(self) -> str:
        """Bridge address with prefix, as `ip addr add` takes it."""
        return f"{self.bridge_address}/{self.network.prefixlen}"

    @property
    def hosts(self) -> list[Host]:
        return [
            Host(name=f"lab{i}", address=str(self.network[_FIRST_HOST_OFFSET + i - 1]),
                 role="head" if i == 1 else "worker", release=self.releases[(i - 1) % len(self.releases)])
            for i in range(1, self.host_count + 1)
        ]

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts)
        raise LabError(f"no lab host named {name!r}: the lab has {known}")
