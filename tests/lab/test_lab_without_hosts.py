"""Lab logic that needs no hosts: layout, inventory, base recipe key and build errors, preflight, CLI errors."""

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from lab import cli, inventory, network, preflight, rootfs
from lab.errors import LabError
from lab.layout import LabSpec
from lab.paths import REPO_ROOT


def test_hosts_are_named_and_addressed_from_the_subnet():
    spec = LabSpec(host_count=3, subnet="10.9.8.0/24")
    assert [(h.name, h.address, h.role) for h in spec.hosts] == [
        ("lab1", "10.9.8.11", "head"), ("lab2", "10.9.8.12", "worker"), ("lab3", "10.9.8.13", "worker")]
    assert spec.bridge_interface == "10.9.8.1/24"
    assert [(h.netns, h.link) for h in spec.hosts][0] == ("rvs-lab1", "rvs-lab1")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"host_count": 0}, "--hosts must be between 1 and 8"),
    ({"host_count": 9}, "--hosts must be between 1 and 8"),
    ({"subnet": "10.0.0.0/29"}, "too small for 2 hosts"),
    ({"subnet": "10.0.0.1/24"}, "must be an IPv4 network"),
    ({"shm_size": "lots"}, "--shm-size must be a size"),
])
def test_bad_inputs_are_refused_with_the_option_named(kwargs, message):
    with pytest.raises(LabError, match=message):
        LabSpec(**kwargs)


def test_unknown_host_name_lists_the_known_ones():
    with pytest.raises(LabError, match="no lab host named 'lab7': the lab has lab1, lab2"):
        LabSpec(host_count=2).host("lab7")


def test_inventory_is_the_format_the_stack_reads():
    text = inventory.render(LabSpec(host_count=2).hosts, datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert text == """\
# Written by `python -m lab up` on 2025-01-02T03:04:05+00:00; do not edit.
hosts:
  - name: lab1
    address: 10.201.0.11
    ssh: {user: root, port: 22, key_file: .lab/ssh/id_ed25519, host_keys: ignore}
    lab: true
    os: debian-12
    route_out: false
    role: head
    accelerator: cpu
    gpus: []
  - name: lab2
    address: 10.201.0.12
    ssh: {user: root, port: 22, key_file: .lab/ssh/id_ed25519, host_keys: ignore}
    lab: true
    os: debian-12
    route_out: false
    role: worker
    accelerator: cpu
    gpus: []
"""


def test_base_key_changes_with_the_recipe_and_the_mirror():
    recipe = rootfs.Path(rootfs.__file__).read_bytes()
    key = rootfs.version_key("http://a/debian", recipe)
    assert key == rootfs.version_key("http://a/debian", recipe)
    assert key != rootfs.version_key("http://b/debian", recipe)
    assert key != rootfs.version_key("http://a/debian", recipe.replace(b'"rsync", ', b""))


def test_mirror_is_read_from_apt_sources_in_both_formats(tmp_path, monkeypatch):
    sources_d = tmp_path / "sources.list.d"
    sources_d.mkdir()
    (sources_d / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n")
    monkeypatch.setattr(rootfs, "_SOURCES", (tmp_path / "sources.list", sources_d))
    assert rootfs.debian_mirror() == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text("# old style\ndeb [arch=amd64] http://old.example/debian bookworm main\n")
    assert rootfs.debian_mirror() == "http://old.example/debian"
    for path in (tmp_path / "sources.list", sources_d / "debian.sources"):
        path.unlink()
    with pytest.raises(LabError, match="no apt source for Debian bookworm"):
        rootfs.debian_mirror()


def test_failed_base_build_names_the_step_and_leaves_no_valid_base(tmp_path, monkeypatch):
    failing = ["sh", "-c", "echo 'E: Couldn'\\''t find package no-such-package'; exit 1"]
    monkeypatch.setattr(rootfs, "_debootstrap_argv", lambda mirror, target: failing)
    with pytest.raises(LabError, match=r"base build failed at step 'debootstrap' \(exit 1\).*no-such-package"):
        rootfs._build("http://mirror.example/debian", "0123456789ab", tmp_path, log=lambda _: None)
    assert not (tmp_path / "base-0123456789ab").exists()


def test_subnet_clashing_with_an_existing_interface_is_refused():
    with pytest.raises(LabError, match=r"subnet 127.0.0.0/24 clashes with lo \(127.0.0.1/8\)"):
        network.check_subnet_free(LabSpec(subnet="127.0.0.0/24"))


def test_missing_namespace_support_is_named(monkeypatch):
    monkeypatch.setattr(preflight, "_NAMESPACES", ("net", "time-travel"))
    with pytest.raises(LabError, match="no time-travel namespace support"):
        preflight.require_machine_support()


def test_cli_prints_one_line_and_exits_non_zero(capsys):
    assert cli.main(["up", "--hosts", "9"]) == 1
    err = capsys.readouterr().err
    assert err == "lab up: --hosts must be between 1 and 8 (got 9)\n"


@pytest.mark.lab
@pytest.mark.skipif(os.geteuid() != 0, reason="dropping root to test the not-root error needs root")
def test_cli_as_non_root_says_root_is_needed():
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, "-m", "lab", "down"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.startswith("lab down: the lab needs root") and done.stderr.count("\n") == 1
