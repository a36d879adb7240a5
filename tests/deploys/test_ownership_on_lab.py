"""Stacks share no host: the OS preflight claims a lab host for one stack (`deploys.layout.OWNER_FILE`),
a second stack is refused there before anything changes, and destroying the first frees the host."""

from __future__ import annotations

import pytest

from deploys.layout import OWNER_FILE
from deploys.runner import run_deploy
from deploys.specs import PlatformSpec
from stack.hosts import host_key_policy, ssh_target
from tests.support.lab_nodes import run_on

pytestmark = pytest.mark.lab


def preflight(host, owner: str, deploy: str = "deploys.node:os_preflight"):
    return run_deploy([ssh_target(host)], deploy, host_keys=host_key_policy(host), spec=PlatformSpec(owner=owner),
                      **({"purge_cache": False} if "retire" in deploy else {}))[host.name]  # fmt: skip


def test_a_second_stack_is_refused_on_a_claimed_host_until_the_first_is_destroyed(lab_nodes):
    host = lab_nodes[1]
    before = run_on(host.name, f"cat {OWNER_FILE} 2>/dev/null || true").strip()
    run_on(host.name, f"rm -f {OWNER_FILE}")
    try:
        assert preflight(host, "team/a").error is None
        assert preflight(host, "team/a").error is None  # the owner again: its own host
        refused = preflight(host, "team/b")
        assert refused.error and "another stack, team/a" in refused.error and OWNER_FILE in refused.error
        assert preflight(host, "team/b", "deploys.node:retire_os_preflight").error is None  # not b's to free
        assert run_on(host.name, f"cat {OWNER_FILE}").strip() == "team/a"
        assert preflight(host, "team/a", "deploys.node:retire_os_preflight").error is None
        assert preflight(host, "team/b").error is None  # the control: a freed host takes the next stack
        assert run_on(host.name, f"cat {OWNER_FILE}").strip() == "team/b"
    finally:
        run_on(host.name, f"rm -f {OWNER_FILE}" + (f" && printf '%s\\n' {before} > {OWNER_FILE}" if before else ""))
