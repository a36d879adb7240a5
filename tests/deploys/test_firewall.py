"""The host firewall's operations and facts on recorded data, and its unit."""

import json

import pytest

from deploys import firewall
from deploys.specs import FirewallSpec
from tests.deploys.harness import CASES, check_fact_case, check_operation_case, load_cases

OPERATIONS = ["firewall_loaded", "firewall_table_absent"]
OPERATION_CASES = [(name, case) for name in OPERATIONS for case in load_cases(f"{name}.json")]
FACT_CASES = json.loads((CASES / "firewall_facts.json").read_text())


@pytest.mark.parametrize(("name", "case"), OPERATION_CASES, ids=[f"{name}: {case['id']}" for name, case in OPERATION_CASES])
def test_operation(name, case):
    check_operation_case(getattr(firewall, name), case)


@pytest.mark.parametrize("case", FACT_CASES, ids=[f"{c['fact']}: {c.get('note') or c['output'][0][:30]}" for c in FACT_CASES])
def test_fact(case):
    check_fact_case(firewall, case)


def test_the_unit_loads_the_rules_at_boot_and_its_stop_deletes_only_the_stacks_table():
    unit = firewall.firewall_unit(FirewallSpec(rules="", ephemeral_ports=(32768, 60999)))
    assert "Type=oneshot\nRemainAfterExit=yes\n" in unit
    assert "ExecStart=/usr/sbin/nft -f /etc/ray-vllm-stack/firewall.nft\n" in unit
    assert "ExecStop=-/usr/sbin/nft delete table inet ray_vllm_stack\n" in unit
    assert "After=nftables.service" in unit and "WantedBy=sysinit.target" in unit
    assert "flush" not in unit
