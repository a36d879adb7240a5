"""The supported-platform table judged on the real os-release files of `fixtures/`: the releases
the stack supports pass, the others get one sentence naming what was found and what is supported."""

import pytest

from deploys.facts import HostPlatform
from deploys.platforms import PLATFORM_KEYS, platform_problem
from tests.deploys.harness import FIXTURES, SECTION

UNSUPPORTED = {
    "debian-11": "the node runs Debian GNU/Linux 11 (x86_64); "
    "supported: Debian 12, Debian 13, Ubuntu 22.04, Ubuntu 24.04 on x86_64",
    "rocky-9.4": "the node runs Rocky Linux 9.4 (x86_64); "
    "supported: Debian 12, Debian 13, Ubuntu 22.04, Ubuntu 24.04 on x86_64",
}


def found(release: str, arch: str = "x86_64") -> dict:
    os_release = (FIXTURES / "os-release" / release).read_text().splitlines()
    return HostPlatform().process([*os_release, SECTION, arch, SECTION, SECTION, "apt-get", "dpkg"])


def test_every_release_of_the_fixtures_is_judged():
    releases = sorted(path.name for path in (FIXTURES / "os-release").iterdir())
    assert releases == sorted([*PLATFORM_KEYS, *UNSUPPORTED])  # a new fixture or table row needs a verdict here


@pytest.mark.parametrize("release", PLATFORM_KEYS)
def test_supported_releases_pass_and_only_as_themselves(release):
    assert platform_problem(found(release)) is None
    assert platform_problem(found(release), declared=release) is None
    other = next(key for key in PLATFORM_KEYS if key != release)
    assert platform_problem(found(release), declared=other).startswith(f"the inventory declares os: {other}, but")
    assert platform_problem(found(release, arch="aarch64")).endswith(
        "(aarch64); supported: Debian 12, Debian 13, Ubuntu 22.04, Ubuntu 24.04 on x86_64"
    )


@pytest.mark.parametrize("release", UNSUPPORTED)
def test_unsupported_releases_fail_naming_what_was_found(release):
    assert platform_problem(found(release)) == UNSUPPORTED[release]
