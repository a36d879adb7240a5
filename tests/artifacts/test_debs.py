"""The controller's .debs for a node release: the private apt configuration (never the
controller's own), the sources per release, and (slow, over the network) a real resolve and
download for Debian 13 and Ubuntu 24.04 whose .debs are checked field by field."""

from __future__ import annotations

import os
import re
import subprocess
import typing
from pathlib import Path

import pytest
from pydantic import ValidationError

from artifacts import debs
from artifacts.debs import RELEASES, Mirrors, PrivateApt, ReleaseName, prepare_debs, sources_list
from stack.config import HostConfig
from stack.node_steps import SYSTEM_PACKAGES

KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


def test_every_release_the_config_accepts_has_sources():
    assert list(RELEASES) == list(typing.get_args(ReleaseName))
    os_field = typing.get_args(HostConfig.model_fields["os"].annotation)[0]
    assert list(typing.get_args(os_field)) == list(RELEASES)


def test_sources_name_the_release_suites_on_the_configured_mirrors():
    mirrors = Mirrors(debian_mirror="http://mirror.lan/debian", debian_security_mirror="file:///srv/debian-security")
    assert sources_list("debian-13", mirrors, KEYRING) == (
        f"deb [signed-by={KEYRING}] http://mirror.lan/debian trixie main\n"
        f"deb [signed-by={KEYRING}] http://mirror.lan/debian trixie-updates main\n"
        f"deb [signed-by={KEYRING}] file:///srv/debian-security trixie-security main\n"
    )
    ubuntu = Path("/k/ubuntu-archive-keyring.gpg")
    assert sources_list("ubuntu-22.04", Mirrors(), ubuntu) == (
        f"deb [signed-by={ubuntu}] http://archive.ubuntu.com/ubuntu jammy main universe\n"
        f"deb [signed-by={ubuntu}] http://archive.ubuntu.com/ubuntu jammy-updates main universe\n"
        f"deb [signed-by={ubuntu}] http://archive.ubuntu.com/ubuntu jammy-security main universe\n"
    )


def test_a_mirror_or_keyring_that_could_change_the_sources_line_is_refused():
    for bad in ("http://mirror.lan/debian trixie main", "http://mirror.lan/[trusted=yes]", "ftp://mirror.lan/debian",
                "file://relative/debian"):  # fmt: skip
        with pytest.raises(ValidationError, match="debian_mirror"):
            Mirrors(debian_mirror=bad)
    with pytest.raises(RuntimeError, match="apt paths may hold only"):
        sources_list("debian-12", Mirrors(), Path("/k/my keys.gpg"))
    # Positive control: plain URLs of every accepted kind.
    for good in ("http://mirror.lan/debian", "https://mirror.lan:8443/debian/", "file:///srv/mirror/debian"):
        assert Mirrors(debian_mirror=good).debian_mirror == good


def test_private_apt_reads_and_writes_only_its_own_tree(tmp_path):
    """apt itself (`apt-config dump`, no network) reports every directory under the private root, and
    reads the private apt.conf.d, so not the controller's (apt reads one)."""
    apt = PrivateApt(tmp_path / "apt", sources_list("debian-12", Mirrors(), KEYRING))
    apt.write()
    assert (tmp_path / "apt" / "state" / "status").read_text() == ""  # nothing counts as installed
    assert (tmp_path / "apt" / "etc" / "sources.list").read_text() == apt.sources
    (tmp_path / "apt" / "etc" / "apt.conf.d" / "99marker").write_text('Rvs::Marker "private";\n')
    root = str(tmp_path / "apt")
    dump = apt_config(apt.env())
    for key in ("Dir::Etc", "Dir::State", "Dir::Cache", "Dir::Log"):
        assert dump[key].startswith(root), key
    assert dump["Dir::State::status"] == f"{root}/state/status" and dump["Rvs::Marker"] == "private"
    assert dump["APT::Architecture"] == "amd64" and dump["APT::Update::Error-Mode"] == "any"
    assert dump["Dir::Cache::pkgcache"] == ""
    # Positive control: the same apt without APT_CONFIG reads the controller's own configuration.
    own = apt_config({key: value for key, value in os.environ.items() if key != "APT_CONFIG"})
    assert own["Dir::Etc"] == "etc/apt" and "Rvs::Marker" not in own


def apt_config(env: dict[str, str]) -> dict[str, str]:
    out = subprocess.run(["apt-config", "dump"], capture_output=True, text=True, env=env, check=True).stdout
    return {key: value.rstrip(";").strip('"') for key, _, value in (line.partition(" ") for line in out.splitlines())}


def test_a_checkout_path_apt_would_misread_is_refused(tmp_path):
    apt = PrivateApt(tmp_path / 'a"b', "")
    with pytest.raises(RuntimeError, match=r'a"b: apt paths may hold only letters, digits and `\._/\+-`'):
        apt.config()
    assert PrivateApt(tmp_path / "a-b", "").config().startswith(f'Dir::Etc "{tmp_path}/a-b/etc/";')  # positive control


def control_fields(deb: Path) -> dict[str, str]:
    fields = ("Package", "Version", "Architecture")
    out = subprocess.run(["dpkg-deb", "--field", str(deb), *fields], capture_output=True, text=True, check=True).stdout
    return dict(line.split(": ", 1) for line in out.splitlines())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("release", "libnftables"),
    [("debian-13", r"1\.1\.\d+-\d+"), ("ubuntu-24.04", r"1\.0\.9-1(ubuntu[\d.]+)?")],
)
def test_real_debs_for_a_release_the_controller_does_not_run(release, libnftables, tmp_path):
    """Over the network from the default mirrors, signatures checked: the closure of the nodes'
    packages for the release, each .deb's control fields what the index promised."""
    files = prepare_debs(list(SYSTEM_PACKAGES), release, Mirrors(), cache=tmp_path)
    assert files.release == release and files.debs_dir == str(tmp_path / release / "pool")
    assert set(SYSTEM_PACKAGES) <= set(files.debs) and "libnftables1" in files.debs
    for name, deb in files.debs.items():
        fields = control_fields(Path(files.debs_dir) / deb.file)
        assert fields["Package"] == name and fields["Version"] == deb.version
        assert fields["Architecture"] in ("amd64", "all")
    assert re.fullmatch(libnftables, files.debs["libnftables1"].version), files.debs["libnftables1"].version
    assert "libnftables1" in files.debs["nftables"].depends
    assert files.downloaded_bytes > 100_000  # ubuntu-24.04: 9 .debs, 0.74 MB
    again = prepare_debs(list(SYSTEM_PACKAGES), release, Mirrors(), cache=tmp_path)
    assert again.debs == files.debs and again.downloaded_bytes == 0  # cached: nothing downloaded twice
    if not debs.UBUNTU_KEYRING.is_file() and release.startswith("ubuntu"):
        # This controller lacks ubuntu-keyring: the keyring came from Debian 13's package.
        assert (tmp_path / "keyrings" / "ubuntu-archive-keyring.gpg").is_file()
