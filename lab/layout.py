"""What a lab of N hosts looks like: names, addresses and interface names, derived from a few inputs."""

import ipaddress
import re
from dataclasses import dataclass

from lab.errors import LabError

DEFAULT_SUBNET = "10.201.0.0/24"
DEFAULT_SHM_SIZE = "4g"
MAX_HOSTS = 8
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

    def __post_init__(self):
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

    def __str__(self) -> str:
        return f"{self.host_count} hosts on {self.subnet} with a {self.shm_size} /dev/shm each"

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
                 role="head" if i == 1 else "worker")
            for i in range(1, self.host_count + 1)
        ]

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts)
        raise LabError(f"no lab host named {name!r}: the lab has {known}")
