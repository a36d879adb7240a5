"""Stacks share no host: the OS preflight claims each lab host for one stack (`deploys.layout.OWNER_FILE`).
Two stacks on disjoint hosts work side by side; a second stack is refused on a claimed host before
anything there changes; destroying the first frees the host."""

from __future__ import annotations

import pytest

from deploys.layout import OWNER_FILE
from deploys.runner import run_deploy
from deploys.specs import PlatformSpec
from stack.hosts import host_key_policy, ssh_target
from tests.support.lab_nodes import run_on

pytestmark = pytest.mark.lab

STACK_FILES = r"find /opt/ray-vllm-stack /var/cache/ray-vllm-stack /var/lib/ray-vllm-stack /etc/ray-vllm-stack /etc/systemd/system -printf '%p %s %T@\n' 2>/dev/null | sort | md5sum"
"""One digest of the names, sizes and times of every file of the stack's layout and units: "nothing touched"."""


def claim(host, owner: str):
    return run_deploy([ssh_target(host)], "deploys.node:os_preflight", host_keys=host_key_policy(host),
                      spec=PlatformSpec(owner=owner))[host.name]  # fmt: skip


def release(host, owner: str):
    return run_deploy([ssh_target(host)], "deploys.node:retire_os_preflight", host_keys=host_key_policy(host),
                      spec=PlatformSpec(owner=owner), purge_cache=False)[host.name]  # fmt: skip


def test_stacks_on_disjoint_hosts_work_side_by_side_and_a_claimed_host_refuses_another(lab_nodes):
    lab1, lab2 = lab_nodes
    saved = {host.name: run_on(host.name, f"cat {OWNER_FILE} 2>/dev/null || true").strip() for host in lab_nodes}
    for host in lab_nodes:
        run_on(host.name, f"rm -f {OWNER_FILE}")
    try:
        assert claim(lab1, "team/a").error is None and claim(lab2, "team/b").error is None  # side by side
        assert claim(lab1, "team/a").error is None  # its own host again
        before = run_on("lab1", STACK_FILES)
        refused = claim(lab1, "team/b")
        assert refused.error and "another stack, team/a" in refused.error and OWNER_FILE in refused.error
        assert release(lab1, "team/b").error is None  # not b's to free
        assert run_on("lab1", STACK_FILES) == before  # b changed nothing on a's host
        assert run_on("lab1", f"cat {OWNER_FILE}").strip() == "team/a"
        assert release(lab1, "team/a").error is None  # a destroyed
        assert claim(lab1, "team/b").error is None  # the control: a freed host takes the next stack
        assert run_on("lab1", f"cat {OWNER_FILE}").strip() == "team/b"
    finally:
        for host in lab_nodes:
            restore = f" && printf '%s\\n' {saved[host.name]} > {OWNER_FILE}" if saved[host.name] else ""
            run_on(host.name, f"rm -f {OWNER_FILE}{restore}")
