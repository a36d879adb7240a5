"""`down` removes everything, also after a crash or an interrupted `up`; `up` meets its time budget.

These tests take the session's lab down; each brings it back up before it ends.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import api, cgroups, network
from lab.errors import LabError
from lab.paths import REPO_ROOT, STATE_DIR
from lab.processes import ProcessRecord

pytestmark = pytest.mark.lab

UP_BUDGET_S = 10.0


def lab_processes() -> list[ProcessRecord]:
    return [record for pid in cgroups.pids(cgroups.lab_cgroup()) if (record := ProcessRecord.of(pid))]


def assert_nothing_left(processes: list[ProcessRecord]) -> None:
    assert api.leftovers() == []
    assert [p.pid for p in processes if p.alive()] == []
    assert network.lab_netns() == []
    assert [name for name in Path("/sys/class/net").iterdir() if name.name.startswith("rvs-")] == []
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    assert [line for line in mounts if str(REPO_ROOT / ".lab") in line] == []
    assert not cgroups.lab_cgroup().exists()
    assert api.status() == []


@pytest.fixture
def restore_lab(lab_hosts):
    """Bring the session's lab back for the tests that run after this one."""
    yield
    api.down()
    api.up(hosts=len(lab_hosts))


def test_down_leaves_no_namespace_mount_process_interface_or_cgroup(lab_hosts, restore_lab):
    processes = lab_processes()
    assert len(processes) >= 2 * len(lab_hosts)  # at least a launcher and an init per host
    started = time.monotonic()
    api.down()
    print(f"down of {len(lab_hosts)} hosts: {time.monotonic() - started:.2f} s")
    assert_nothing_left(processes)


def test_down_cleans_up_after_an_interrupted_up_with_lost_records(lab_hosts, restore_lab):
    # What a controller killed between booting the hosts and recording them leaves behind.
    processes = lab_processes()
    for record in STATE_DIR.glob("lab*/init.json"):
        record.unlink()
    (STATE_DIR / "lab.json").unlink()
    api.down()
    assert_nothing_left(processes)


def test_down_cleans_up_after_up_is_killed_mid_boot(lab_hosts, restore_lab):
    api.down()
    up = subprocess.Popen([sys.executable, "-m", "lab", "up", "--hosts", "2"], cwd=REPO_ROOT,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (STATE_DIR / "lab1" / "launcher.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    up.kill()
    up.wait()
    time.sleep(0.5)  # a launcher that was already on its way finishes starting
    processes = lab_processes()
    assert network.lab_netns(), "up was killed before it made anything: nothing tested"
    api.down()
    assert_nothing_left(processes)


def test_up_of_four_hosts_from_the_cached_base_is_within_budget(lab_hosts, restore_lab):
    api.down()
    started = time.monotonic()
    hosts = api.up(hosts=4)
    elapsed = time.monotonic() - started
    print(f"up of 4 hosts from the cached base: {elapsed:.2f} s")
    assert [h.name for h in hosts] == ["lab1", "lab2", "lab3", "lab4"]
    assert [s.state for s in api.status()] == ["up"] * 4
    assert elapsed <= UP_BUDGET_S
    for lab_host in hosts:
        pss_kib, rss_kib = api.memory_kib(lab_host.name)
        print(f"{lab_host.name}: idle PSS {pss_kib / 1024:.1f} MiB, RSS {rss_kib / 1024:.1f} MiB")
        assert rss_kib <= 100 * 1024


def test_up_with_another_spec_while_up_is_refused(lab_hosts):
    with pytest.raises(LabError, match="already up with 2 hosts.*lab down"):
        api.up(hosts=3)
    assert json.loads((STATE_DIR / "lab.json").read_text())["spec"]["host_count"] == 2
