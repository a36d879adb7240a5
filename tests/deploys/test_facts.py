"""Each fact's command, and its parse of recorded output: the cases of `cases/facts.json`, and the
real outputs of `fixtures/` (os-release, glibc, nvidia-smi of the releases and drivers users have)."""

import json

import pytest

from deploys import facts
from tests.deploys.harness import CASES, FIXTURES, SECTION, check_fact_case

FACT_CASES = json.loads((CASES / "facts.json").read_text())

RELEASES = {
    # fixture: (ID, VERSION_ID, VERSION_CODENAME, glibc)
    "debian-11": ("debian", "11", "bullseye", "2.31"),
    "debian-12": ("debian", "12", "bookworm", "2.36"),
    "debian-13": ("debian", "13", "trixie", "2.41"),
    "ubuntu-22.04": ("ubuntu", "22.04", "jammy", "2.35"),
    "ubuntu-24.04": ("ubuntu", "24.04", "noble", "2.39"),
    "rocky-9.4": ("rocky", "9.4", None, None),
}
DRIVERS = {
    # fixture: (driver, CUDA the driver runs, GPUs, error)
    "h100-535.161.08": ("535.161.08", "12.2", 1, None),
    "t4-580.126.09": ("580.126.09", "13.0", 1, None),
    "b200-610.43.02": ("610.43.02", "13.3", 2, None),
    "failed": (None, None, 0, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
               "Make sure that the latest NVIDIA driver is installed and running."),
}  # fmt: skip


def fixture(*parts: str) -> list[str]:
    return FIXTURES.joinpath(*parts).read_text().splitlines()


@pytest.mark.parametrize(
    "case", FACT_CASES, ids=[f"{c['fact']}: {c.get('note') or c['output'][0][:30]}" for c in FACT_CASES]
)
def test_fact(case):
    check_fact_case(facts, case)


@pytest.mark.parametrize("release", RELEASES)
def test_os_release_of_each_release(release):
    parsed = facts.parse_os_release(fixture("os-release", release))
    assert (parsed["ID"], parsed["VERSION_ID"], parsed.get("VERSION_CODENAME")) == RELEASES[release][:3]
    assert parsed["PRETTY_NAME"].startswith(("Debian GNU/Linux", "Ubuntu", "Rocky Linux"))


@pytest.mark.parametrize("release", [name for name, values in RELEASES.items() if values[3]])
def test_glibc_of_each_release(release):
    """From `getconf GNU_LIBC_VERSION` and from `ldd --version` alike; nothing from other text."""
    glibc = RELEASES[release][3]
    assert facts.parse_glibc(fixture("getconf", release)) == glibc
    assert facts.parse_glibc(fixture("ldd", release)) == glibc
    assert facts.parse_glibc(fixture("os-release", release)) is None


@pytest.mark.parametrize("driver", DRIVERS)
def test_nvidia_smi_of_each_driver(driver):
    smi = facts.parse_nvidia_smi(fixture("nvidia-smi", f"{driver}.query.csv"), fixture("nvidia-smi", f"{driver}.txt"))
    version, cuda, gpus, error = DRIVERS[driver]
    assert (smi["driver"], smi["cuda"], len(smi["gpus"]), smi["error"]) == (version, cuda, gpus, error)
    assert all(gpu["driver"] == version and gpu["memory_mib"] > 0 for gpu in smi["gpus"])


@pytest.mark.parametrize("release", [name for name, values in RELEASES.items() if values[3]])
@pytest.mark.parametrize("driver", [None, "t4-580.126.09"])
def test_host_platform_from_real_outputs(release, driver):
    """The whole probe's output, assembled from one release's files as the command prints them."""
    output = [
        *fixture("os-release", release), SECTION, "x86_64", SECTION,
        *fixture("getconf", release), *fixture("ldd", release)[:1], SECTION, "apt-get", "dpkg", SECTION, "3.11.2",
    ]  # fmt: skip
    if driver:
        output += [SECTION, *fixture("nvidia-smi", f"{driver}.query.csv"), SECTION, *fixture("nvidia-smi", f"{driver}.txt")]
    platform = facts.HostPlatform().process(output)
    os_id, version_id, codename, glibc = RELEASES[release]
    assert platform["os"]["id"] == os_id and platform["os"]["version_id"] == version_id
    assert platform["os"]["codename"] == codename
    assert (platform["arch"], platform["glibc"], platform["python"]) == ("x86_64", glibc, "3.11.2")
    assert platform["package_tools"] == ["apt-get", "dpkg"]
    if driver:
        assert (platform["nvidia"]["driver"], platform["nvidia"]["cuda"]) == ("580.126.09", "13.0")
    else:
        assert platform["nvidia"] is None


def test_host_owner_reads_the_first_line_and_an_empty_file_claims_nothing():
    assert facts.HostOwner().process(["ray-vllm-stack/dev", ""]) == "ray-vllm-stack/dev"
    assert facts.HostOwner().process([""]) is None
