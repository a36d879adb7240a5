"""Lab logic that needs no hosts: layout, inventory, base recipe key and build errors, preflight, CLI errors."""

import dataclasses
import json
import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from lab import cli, inventory, network, preflight, rootfs, ssh
from lab.errors import LabError
from lab.layout import Host, LabSpec
from lab.paths import REPO_ROOT


def test_hosts_are_named_and_addressed_from_the_subnet():
    spec = LabSpec(host_count=3, subnet="10.9.8.0/24")
    assert [(h.name, h.address, h.role, h.release, h.os) for h in spec.hosts] == [
        ("lab1", "10.9.8.11", "head", "bookworm", "debian-12"), ("lab2", "10.9.8.12", "worker", "trixie", "debian-13"),
        ("lab3", "10.9.8.13", "worker", "bookworm", "debian-12")]
    assert spec.bridge_interface == "10.9.8.1/24"
    assert [(h.netns, h.link) for h in spec.hosts][0] == ("rvs-lab1", "rvs-lab1")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"host_count": 0}, "--hosts must be between 1 and 8"),
    ({"host_count": 9}, "--hosts must be between 1 and 8"),
    ({"subnet": "10.0.0.0/29"}, "too small for 2 hosts"),
    ({"subnet": "10.0.0.1/24"}, "must be an IPv4 network"),
    ({"shm_size": "lots"}, "--shm-size must be a size"),
    ({"releases": ("bookworm", "buster")}, r"--releases must be a comma-separated list of bookworm, trixie \(got 'bookworm,buster'\)"),
    ({"releases": ()}, "--releases must be a comma-separated list"),
    ({"host_count": 2, "releases": ("trixie",) * 3}, "--releases names 3 releases for 2 hosts"),
])
def test_bad_inputs_are_refused_with_the_option_named(kwargs, message):
    with pytest.raises(LabError, match=message):
        LabSpec(**kwargs)


@pytest.mark.parametrize(("count", "releases", "expected"), [
    (1, None, ["bookworm"]),  # the default pair also serves one host
    (2, None, ["bookworm", "trixie"]),
    (4, None, ["bookworm", "trixie", "bookworm", "trixie"]),
    (3, ("trixie",), ["trixie"] * 3),
    (3, ("trixie", "trixie", "bookworm"), ["trixie", "trixie", "bookworm"]),
])
def test_releases_are_cycled_over_the_hosts_head_first(count, releases, expected):
    spec = LabSpec(host_count=count) if releases is None else LabSpec(host_count=count, releases=releases)
    assert [h.release for h in spec.hosts] == expected


def test_cli_takes_releases_as_a_comma_separated_list(capsys):
    assert cli.main(["up", "--hosts", "2", "--releases", "trixie,sid"]) == 1
    assert capsys.readouterr().err == "lab up: --releases must be a comma-separated list of bookworm, trixie (got 'trixie,sid')\n"


def test_spec_read_back_from_its_record_equals_the_spec():
    spec = LabSpec(host_count=3, releases=("trixie", "bookworm"))
    record = json.loads(json.dumps(dataclasses.asdict(spec)))  # what lab.json holds: releases as a list
    assert LabSpec(**record) == spec


def test_ssh_argv_logs_in_as_the_lab_user_and_runs_the_words_as_one_root_script_through_sudo():
    argv = ssh.ssh_argv(Host("lab1", "10.0.0.11", "head"), "echo 'a  b' > /root/x;", "cat", "/root/x")
    assert argv[-4:-1] == ["-l", "rvs", "10.0.0.11"]
    assert shlex.split(argv[-1]) == ["sudo", "-n", "bash", "-c", "echo 'a  b' > /root/x; cat /root/x"]
    assert ssh.login_argv(Host("lab1", "10.0.0.11", "head"), "rvs-nosudo", "id")[-4:] == ["-l", "rvs-nosudo", "10.0.0.11", "id"]


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
    os: debian-12
    ssh: {user: rvs, port: 22, key_file: .lab/ssh/id_ed25519, host_keys: ignore}
    lab: true
    route_out: false
    role: head
    accelerator: cpu
    gpus: []
  - name: lab2
    address: 10.201.0.12
    os: debian-13
    ssh: {user: rvs, port: 22, key_file: .lab/ssh/id_ed25519, host_keys: ignore}
    lab: true
    route_out: false
    role: worker
    accelerator: cpu
    gpus: []
"""


def test_base_key_changes_with_the_recipe_the_suite_and_the_mirror():
    recipe = rootfs.Path(rootfs.__file__).read_bytes()
    key = rootfs.version_key("http://a/debian", "bookworm", recipe)
    assert key == rootfs.version_key("http://a/debian", "bookworm", recipe)
    assert key != rootfs.version_key("http://b/debian", "bookworm", recipe)
    assert key != rootfs.version_key("http://a/debian", "trixie", recipe)
    assert key != rootfs.version_key("http://a/debian", "bookworm", recipe.replace(b'"rsync", ', b""))


def test_each_suite_gets_the_common_packages_and_its_own_names():
    argv = {suite: rootfs._debootstrap_argv("http://a/debian", suite, rootfs.Path("/t")) for suite in ("bookworm", "trixie")}
    assert argv["trixie"][-3:] == ["trixie", "/t", "http://a/debian"]
    included = {suite: set(words[2].removeprefix("--include=").split(",")) for suite, words in argv.items()}
    assert included["bookworm"] - included["trixie"] == {"libtcmalloc-minimal4"}
    assert included["trixie"] - included["bookworm"] == {"libtcmalloc-minimal4t64"}
    assert {"sudo", "openssh-server", "systemd"} <= included["trixie"]


def test_sshd_refuses_root_and_sudoers_names_the_login_user_and_the_password_user():
    assert "\nPermitRootLogin no\n" in rootfs.SSHD_CONFIG
    rules = [line for line in rootfs.SUDOERS.splitlines() if not line.startswith("#")]
    assert rules == ["rvs ALL=(ALL:ALL) NOPASSWD: ALL", "rvs-password ALL=(ALL:ALL) ALL"]
    assert rootfs.USERS == ("rvs", "rvs-nosudo", "rvs-password")


def test_mirror_is_read_from_apt_sources_in_both_formats(tmp_path, monkeypatch):
    sources_d = tmp_path / "sources.list.d"
    sources_d.mkdir()
    (sources_d / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: trixie trixie-updates\nComponents: main\n")
    monkeypatch.setattr(rootfs, "_SOURCES", (tmp_path / "sources.list", sources_d))
    assert rootfs.debian_mirror() == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text("# old style\ndeb [arch=amd64] http://old.example/debian bookworm main\n")
    assert rootfs.debian_mirror() == "http://old.example/debian"
    for path in (tmp_path / "sources.list", sources_d / "debian.sources"):
        path.unlink()
    with pytest.raises(LabError, match="no apt source for Debian bookworm or trixie"):
        rootfs.debian_mirror()


def test_failed_base_build_names_the_step_and_leaves_no_valid_base(tmp_path, monkeypatch):
    failing = ["sh", "-c", "echo 'E: Couldn'\\''t find package no-such-package'; exit 1"]
    monkeypatch.setattr(rootfs, "_debootstrap_argv", lambda mirror, suite, target: failing)
    with pytest.raises(LabError, match=r"base build failed at step 'debootstrap' \(exit 1\).*no-such-package"):
        rootfs._build("http://mirror.example/debian", "trixie", "0123456789ab", tmp_path, log=lambda _: None)
    assert not (tmp_path / "base-trixie-0123456789ab").exists()


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
