"""The operating systems and architectures the stack supports: the one table the OS preflight, the
config's `hosts[].os` and the docs follow.

A release is supported when the stack's code paths (apt, systemd, the pushed interpreter and the
package locks) are tested on it; the locks hold x86_64 manylinux wheels only, hence one arch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Platform:
    os_id: str
    """`ID` in /etc/os-release."""
    version_id: str
    """`VERSION_ID` in /etc/os-release (Ubuntu's has no point release: `24.04`)."""
    codename: str
    label: str

    @property
    def key(self) -> str:
        """How the inventory names it (`os: ubuntu-24.04`)."""
        return f"{self.os_id}-{self.version_id}"


SUPPORTED_PLATFORMS = (
    Platform("debian", "12", "bookworm", "Debian 12"),
    Platform("debian", "13", "trixie", "Debian 13"),
    Platform("ubuntu", "22.04", "jammy", "Ubuntu 22.04"),
    Platform("ubuntu", "24.04", "noble", "Ubuntu 24.04"),
)
SUPPORTED_ARCHES = ("x86_64",)
"""`uname -m` values; the package locks and wheelhouses are x86_64 manylinux builds."""
PACKAGE_TOOLS = ("apt-get", "dpkg")
"""What installing system packages runs on the node."""

PLATFORM_KEYS = tuple(platform.key for platform in SUPPORTED_PLATFORMS)
PlatformKey = Literal[PLATFORM_KEYS]  # type: ignore[valid-type]  # built from the table: one place to add a release
_BY_KEY = {platform.key: platform for platform in SUPPORTED_PLATFORMS}


def platform_key(found: dict) -> str:
    """The found OS in the inventory's spelling (`rocky-9.4`), from the `HostPlatform` fact."""
    return f"{found['os'].get('id') or 'unknown'}-{found['os'].get('version_id') or 'unknown'}"


def describe(found: dict) -> str:
    """What the node runs, for people: `Rocky Linux 9.4 (x86_64)`."""
    release = found["os"]
    name = release.get("name") or release.get("id")
    if not name:
        system = "an OS without /etc/os-release"
    elif release.get("version_id"):
        system = f"{name} {release['version_id']}"
    else:
        system = release.get("pretty_name") or name
    return f"{system} ({found.get('arch') or 'unknown arch'})"


def supported_text(keys: tuple[str, ...] = PLATFORM_KEYS, arches: tuple[str, ...] = SUPPORTED_ARCHES) -> str:
    """`Debian 12, Debian 13, Ubuntu 22.04, Ubuntu 24.04 on x86_64`."""
    return f"{', '.join(_BY_KEY[key].label for key in keys)} on {', '.join(arches)}"


def platform_problem(
    found: dict,
    declared: str | None = None,
    supported: tuple[str, ...] = PLATFORM_KEYS,
    arches: tuple[str, ...] = SUPPORTED_ARCHES,
) -> str | None:
    """Why the node cannot run the stack (one sentence naming what was found and what is
    supported), or None when it can."""
    key = platform_key(found)
    what = describe(found)
    if declared is not None and key != declared:
        return f"the inventory declares os: {declared}, but the node runs {what}; fix `os` or the host's address"
    if key not in supported or found.get("arch") not in arches:
        return f"the node runs {what}; supported: {supported_text(supported, arches)}"
    missing = [tool for tool in PACKAGE_TOOLS if tool not in found.get("package_tools", ())]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        return f"the node runs {what} but {' and '.join(missing)} {verb} missing; the stack installs system packages with {' and '.join(PACKAGE_TOOLS)}"
    return None
