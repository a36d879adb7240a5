"""Behaviour of running lab hosts: SSH, isolation between hosts, crashes, network cuts."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lab import api, cgroups, host
from lab.paths import INVENTORY_FILE, REPO_ROOT, SSH_CONFIG

pytestmark = pytest.mark.lab

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


def ssh_port_open(address: str) -> bool:
    try:
        socket.create_connection((address, 22), timeout=2).close()
        return True
    except OSError:
        return False


def test_each_host_answers_ssh_with_its_own_hostname(lab_hosts):
    names = [on(h.name, "hostname") for h in lab_hosts]
    assert names == ["lab1", "lab2"]


def test_cli_ssh_command_from_the_brief_works(lab_hosts):
    argv = ["ssh", "-i", ".lab/ssh/id_ed25519", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", f"root@{lab_hosts[0].address}", "cat /etc/hostname"]
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


def test_systemd_is_pid_1_in_the_hosts_own_cgroup(lab_hosts):
    assert on("lab1", "systemctl is-system-running --wait") == "running"
    assert on("lab1", "cat /proc/1/comm") == "systemd"
    init = host.init_process("lab1")
    # Seen from the machine, the host's systemd lives in the lab's cgroup, never the machine's root.
    unified = [line for line in Path(f"/proc/{init.pid}/cgroup").read_text().splitlines() if line.startswith("0::")]
    assert unified == ["0::/rvs-lab/lab1/init.scope"]


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
        {"name": h.name, "address": h.address, "role": role, "accelerator": "cpu", "gpus": [], "lab": True,
         "ssh": {"user": "root", "port": 22, "key_file": ".lab/ssh/id_ed25519", "host_keys": "ignore"}}
        for h, role in zip(lab_hosts, ["head", "worker"], strict=True)
    ]


def test_idle_host_uses_at_most_100_mib(lab_hosts):
    for lab_host in lab_hosts:
        pss_kib, rss_kib = api.memory_kib(lab_host.name)
        assert 0 < pss_kib <= rss_kib <= 100 * 1024, (lab_host.name, pss_kib, rss_kib)


def test_up_again_is_harmless(lab_hosts):
    on("lab2", "echo still-here > /root/again")
    before = [host.init_process(h.name) for h in lab_hosts]
    assert api.up(hosts=len(lab_hosts)) == lab_hosts
    assert [host.init_process(h.name) for h in lab_hosts] == before
    assert on("lab2", "cat /root/again") == "still-here"


def test_enabled_unit_and_disk_come_back_after_crash_and_start(lab_hosts):
    on("lab1", f"cat > /etc/systemd/system/lab-probe.service <<'EOF'\n{PROBE_UNIT}EOF\n"
               "systemctl enable --now lab-probe && echo kept > /root/disk")
    assert on("lab1", "systemctl is-active lab-probe") == "active"

    api.crash("lab1")
    assert not host.running("lab1")
    assert cgroups.pids(cgroups.host_cgroup("lab1")) == []  # everything on it died
    assert not ssh_port_open(lab_hosts[0].address)
    assert [s.state for s in api.status()] == ["down", "up"]

    api.start("lab1")
    assert on("lab1", "systemctl is-active lab-probe") == "active"
    assert on("lab1", "cat /root/disk") == "kept"
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
