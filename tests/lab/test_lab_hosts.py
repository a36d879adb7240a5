"""Behaviour of running lab hosts: releases, SSH as a sudo user, isolation between hosts, crashes, network cuts.

The session's lab is lab1 on Debian 12 (bookworm) and lab2 on Debian 13 (trixie): tests that
are about a host's own system run on both.
"""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lab import api, cgroups, host
from lab.paths import INVENTORY_FILE, REPO_ROOT, SSH_CONFIG
from lab.rootfs import LOGIN_USER, NO_SUDO_USER, SUDOERS_FILE

pytestmark = pytest.mark.lab
BOTH_RELEASES = pytest.mark.parametrize("name", ["lab1", "lab2"])

PROBE_UNIT = """\
[Unit]
Description=Lab test probe: must come back after a crash
[Service]
ExecStart=/bin/sleep infinity
[Install]
WantedBy=multi-user.target
"""
# What lab2's sshd says first, read from another host over the lab network.
BANNER_OF_LAB2 = "timeout 3 bash -c 'exec 3<>/dev/tcp/lab2/22; head -c 4 <&3'"


def on(name: str, script: str) -> str:
    """Run script on the host; fail the test with its stderr if it exits non-zero."""
    done = api.run_on(name, script)
    assert done.returncode == 0, f"{name}: {script!r} exited {done.returncode}: {done.stderr}"
    return done.stdout.strip()


def login(name: str, user: str, command: str) -> subprocess.CompletedProcess:
    """Log in as `user` with the lab key and run `command` as that user (no sudo)."""
    return subprocess.run(api.login_argv(name, user, command), capture_output=True, text=True, timeout=30)


def ssh_port_open(address: str) -> bool:
    try:
        socket.create_connection((address, 22), timeout=2).close()
        return True
    except OSError:
        return False


def test_each_host_answers_ssh_with_its_own_hostname(lab_hosts):
    names = [on(h.name, "hostname") for h in lab_hosts]
    assert names == ["lab1", "lab2"]


def test_each_host_runs_its_debian_release(lab_hosts):
    releases = [on(h.name, ". /etc/os-release && echo $ID $VERSION_ID $VERSION_CODENAME") for h in lab_hosts]
    assert releases == ["debian 12 bookworm", "debian 13 trixie"]
    assert [entry["os"] for entry in yaml.safe_load(INVENTORY_FILE.read_text())["hosts"]] == ["debian-12", "debian-13"]


@BOTH_RELEASES
def test_sshd_refuses_root_while_the_lab_user_logs_in_with_the_same_key(lab_hosts, name):
    # Root's authorized_keys holds the very key rvs logs in with: the refusal is sshd's PermitRootLogin.
    assert on(name, f"cmp /root/.ssh/authorized_keys ~{LOGIN_USER}/.ssh/authorized_keys && echo same") == "same"
    assert "permitrootlogin no" in on(name, "sshd -T").splitlines()
    as_user = login(name, LOGIN_USER, "id -un")
    assert (as_user.returncode, as_user.stdout.strip()) == (0, LOGIN_USER), as_user.stderr
    as_root = login(name, "root", "id -un")
    assert as_root.returncode == 255 and "Permission denied (publickey)" in as_root.stderr, as_root
    assert as_root.stdout == ""


@BOTH_RELEASES
def test_sudo_works_for_the_lab_user_and_is_refused_for_the_user_without_it(lab_hosts, name):
    allowed = login(name, LOGIN_USER, "sudo -n id -un")
    assert (allowed.returncode, allowed.stdout.strip()) == (0, "root"), allowed.stderr
    refused = login(name, NO_SUDO_USER, "id -un && sudo -n id -un")
    assert refused.returncode == 1 and refused.stdout.strip() == NO_SUDO_USER, refused
    assert refused.stderr.startswith("sudo: "), refused.stderr
    # The drop-in is as sudo demands it (root's, 0440) and the whole policy parses.
    assert on(name, f"stat -c '%U %a' /{SUDOERS_FILE} && visudo -c -q && echo parsed").splitlines() == ["root 440", "parsed"]


@BOTH_RELEASES
def test_run_on_runs_scripts_as_a_root_bash_did_before_root_logins_were_refused(lab_hosts, name):
    assert on(name, 'echo "${BASH_VERSION:+bash}" "$(id -un)" "$HOME" ~') == "bash root /root /root"
    assert on(name, "exec 3<>/dev/tcp/lab1/22 && head -c 4 <&3") == "SSH-"  # /dev/tcp: bash only
    assert on(name, "echo 'quoted  words' \"$((6 * 7))\"") == "quoted  words 42"


def test_cli_ssh_command_from_the_brief_works(lab_hosts):
    argv = ["ssh", "-i", ".lab/ssh/id_ed25519", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", f"rvs@{lab_hosts[0].address}", "cat /etc/hostname"]
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "lab1"


def test_cli_status_lists_hosts_addresses_and_state(lab_hosts):
    done = subprocess.run([sys.executable, "-m", "lab", "status"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = [line.split()[:3] for line in done.stdout.splitlines()[1:]]
    assert rows == [["lab1", "10.201.0.11", "up"], ["lab2", "10.201.0.12", "up"]]


def test_ssh_config_names_every_host(lab_hosts):
    done = subprocess.run(["ssh", "-F", str(SSH_CONFIG), "lab2", "hostname"],
                          capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "lab2", done.stderr


def test_a_file_written_on_one_host_is_absent_on_the_other(lab_hosts):
    on("lab1", "echo only-here > /root/marker && echo shm > /dev/shm/marker")
    assert on("lab1", "cat /root/marker") == "only-here"
    assert on("lab2", "test ! -e /root/marker && test ! -e /dev/shm/marker && echo absent") == "absent"


def test_hosts_have_distinct_machine_ids_and_host_keys(lab_hosts):
    ids = {on(h.name, "cat /etc/machine-id /etc/ssh/ssh_host_ed25519_key.pub") for h in lab_hosts}
    assert len(ids) == len(lab_hosts)


@BOTH_RELEASES
def test_systemd_is_pid_1_in_the_hosts_own_cgroup(lab_hosts, name):
    state = api.run_on(name, "systemctl is-system-running --wait; systemctl --failed --no-legend")
    assert state.stdout.strip() == "running", state.stdout  # else: the failed units, one per line
    assert on(name, "cat /proc/1/comm") == "systemd"
    init = host.init_process(name)
    # Seen from the machine, the host's systemd lives in the lab's cgroup, never the machine's root.
    unified = [line for line in Path(f"/proc/{init.pid}/cgroup").read_text().splitlines() if line.startswith("0::")]
    assert unified == [f"0::/rvs-lab/{name}/init.scope"]


def test_kernel_sysctls_are_read_only_but_the_hosts_own_net_sysctls_are_not(lab_hosts):
    refused = api.run_on("lab1", "echo 60 > /proc/sys/vm/swappiness")
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    on("lab1", "cat /proc/sys/net/ipv4/tcp_keepalive_time > /proc/sys/net/ipv4/tcp_keepalive_time")


def test_dev_shm_is_a_per_host_tmpfs_of_the_requested_size(lab_hosts):
    assert on("lab1", "findmnt -n -o FSTYPE,SIZE /dev/shm").split() == ["tmpfs", "4G"]


def test_hosts_reach_each_other_but_have_no_route_out(lab_hosts):
    assert on("lab1", "getent hosts lab2").split()[0] == lab_hosts[1].address
    assert on("lab1", BANNER_OF_LAB2) == "SSH-"
    address = lab_hosts[0].address
    assert on("lab1", "ip -4 route show") == f"10.201.0.0/24 dev eth0 proto kernel scope link src {address}"
    assert "unreachable" in on("lab1", "ip route get 192.0.2.2 2>&1 || true")
    addresses = on("lab1", "ip -4 -o addr show | awk '{print $2, $4}'").splitlines()
    assert addresses == ["lo 127.0.0.1/8", f"eth0 {address}/24"]


def test_inventory_lists_the_hosts_head_first(lab_hosts):
    text = INVENTORY_FILE.read_text()
    assert text.startswith("# Written by `python -m lab up` on ")
    assert yaml.safe_load(text)["hosts"] == [
        {"name": h.name, "address": h.address, "os": os, "role": role, "accelerator": "cpu", "gpus": [], "lab": True, "route_out": False,
         "ssh": {"user": "rvs", "port": 22, "key_file": ".lab/ssh/id_ed25519", "host_keys": "ignore"}}
        for h, os, role in zip(lab_hosts, ["debian-12", "debian-13"], ["head", "worker"], strict=True)
    ]


def test_idle_host_uses_at_most_100_mib(lab_hosts):
    for lab_host in lab_hosts:
        pss_kib, rss_kib = api.memory_kib(lab_host.name)
        print(f"{lab_host.name} ({lab_host.release}): idle PSS {pss_kib / 1024:.1f} MiB, RSS {rss_kib / 1024:.1f} MiB")
        assert 0 < pss_kib <= rss_kib <= 100 * 1024, (lab_host.name, pss_kib, rss_kib)


def test_up_again_is_harmless(lab_hosts):
    on("lab2", "echo still-here > /root/again")
    before = [host.init_process(h.name) for h in lab_hosts]
    assert api.up(hosts=len(lab_hosts)) == lab_hosts
    assert [host.init_process(h.name) for h in lab_hosts] == before
    assert on("lab2", "cat /root/again") == "still-here"


@BOTH_RELEASES
def test_enabled_unit_and_disk_come_back_after_crash_and_start(lab_hosts, name):
    address = next(h.address for h in lab_hosts if h.name == name)
    on(name, f"cat > /etc/systemd/system/lab-probe.service <<'EOF'\n{PROBE_UNIT}EOF\n"
             "systemctl enable --now lab-probe && echo kept > /root/disk")
    assert on(name, "systemctl is-active lab-probe") == "active"

    api.crash(name)
    assert not host.running(name)
    assert cgroups.pids(cgroups.host_cgroup(name)) == []  # everything on it died
    assert not ssh_port_open(address)
    assert {s.name: s.state for s in api.status()} == {h.name: "down" if h.name == name else "up" for h in lab_hosts}

    api.start(name)
    assert on(name, "systemctl is-active lab-probe") == "active"
    assert on(name, "cat /root/disk") == "kept"
    assert login(name, NO_SUDO_USER, "id -un").stdout.strip() == NO_SUDO_USER  # keys written again at boot
    assert [s.state for s in api.status()] == ["up", "up"]


def test_isolated_host_is_unreachable_until_reconnected(lab_hosts):
    address = lab_hosts[1].address
    api.isolate("lab2")
    try:
        assert [s.state for s in api.status()] == ["up", "isolated"]
        assert not ssh_port_open(address)
        assert api.run_on("lab1", BANNER_OF_LAB2).returncode != 0
    finally:
        api.reconnect("lab2")
    deadline = time.monotonic() + 10
    while not ssh_port_open(address) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert on("lab2", "hostname") == "lab2"
