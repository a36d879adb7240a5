"""The stack's port rules: the `required_ports` output and each node's nftables ruleset built from
them, and the firewall step present exactly when `security.firewall` is on."""

import re

import pytest

from artifacts.paths import REPO_ROOT
from stack.config import Ports, RaySettings, SecurityConfig
from stack.firewall import (
    EPHEMERAL_PORTS,
    covers,
    firewall_policy,
    format_ports,
    merge_ranges,
    node_rules,
    parse_ports,
    port_rules,
    required_ports,
    ruleset,
)
from stack.node_steps import NodeInputs, steps_for
from stack.validation import load_stack_config

DEV_HEAD_RULESET = """\
# ray-vllm-stack's host firewall for lab1 (head): the stack's ports only.
# Written by provisioning; edits are reverted by the next `pulumi up`.
table inet ray_vllm_stack
delete table inet ray_vllm_stack

table inet ray_vllm_stack {
\tset members {
\t\ttype ipv4_addr
\t\telements = { 10.201.0.11, 10.201.0.12 }
\t}
\tset api_consumers {
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 0.0.0.0/0 }
\t}
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\tiif "lo" accept
\t\tct state established,related accept
\t\ttcp dport { 6379-6384, 10001-10100, 29500-29509, 32768-60999 } ip saddr @members accept
\t\ttcp dport { 8000 } ip saddr @api_consumers accept
\t\ttcp dport { 6379-6384, 8000-8001, 10001-10100, 29500-29509, 32768-60999 } drop
\t}
}
"""


def config_of(raw: dict):
    return load_stack_config(raw, set(), REPO_ROOT)


@pytest.fixture
def config(raw_config):
    raw_config["security"] = {"api_bind": "cluster", "dashboard_bind": "cluster"}
    raw_config["ray"] = {"dashboard": False}
    return config_of(raw_config)


def port_sets(rules_text: str) -> list[tuple[str, list[tuple[int, int]]]]:
    """(what the rule does after its port set, the ports) of every `tcp dport { ... }` rule."""
    found = []
    for ports, action in re.findall(r"tcp dport \{ ([^}]*) \} (.*)", rules_text):
        found.append((action, parse_ports(ports.replace(" ", ""))))
    return found


def test_the_dev_head_ruleset(config):
    """The example in the README: the dev stack's head (dashboard off, API from anywhere)."""
    assert ruleset(firewall_policy(config), config.head) == DEV_HEAD_RULESET


def test_members_reach_cluster_ports_and_consumers_only_the_api(config):
    head_rules = ruleset(firewall_policy(config), config.head)
    sets = dict(port_sets(head_rules))
    members = sets["ip saddr @members accept"]
    assert all(covers(members, port) for port in (6379, 6380, 6384, 10001, 10002, 10100, 29500, 40000, 52365))
    assert not covers(members, 8000) and not covers(members, 8001)
    assert sets["ip saddr @api_consumers accept"] == [(8000, 8000)]
    assert "elements = { 10.201.0.11, 10.201.0.12 }" in head_rules


def test_api_and_ray_clients_come_from_their_configured_networks(raw_config):
    raw_config["security"] = {
        "api_bind": "all",
        "dashboard_bind": "cluster",
        "api_allow_from": ["192.168.10.0/24", "10.9.0.7/32"],
        "ray_clients_from": ["172.16.0.0/16"],
    }
    config = config_of(raw_config)
    head_rules = ruleset(firewall_policy(config), config.head)
    assert "set api_consumers {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 192.168.10.0/24, 10.9.0.7 }" in head_rules
    assert "set ray_clients {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 172.16.0.0/16 }" in head_rules
    sets = dict(port_sets(head_rules))
    assert sets["ip saddr @ray_clients accept"] == [(8265, 8265), (10001, 10001)]  # dashboard (on by default), client
    assert not covers(sets["ip saddr @ray_clients accept"], 6379)  # GCS stays the members'


def test_no_ray_clients_means_no_set_and_no_rule(config):
    assert "ray_clients" not in ruleset(firewall_policy(config), config.head)


def test_the_table_looks_at_the_stacks_ports_only(config):
    """Every rule but loopback and replies names the stack's ports; the host's other ports (sshd,
    its own services) and other tables are none of its business."""
    policy = firewall_policy(config)
    for host in config.hosts:
        text = ruleset(policy, host)
        own = [port for rule in node_rules(policy, host.address) for port in rule.ports]
        body = [line.strip() for line in text[text.index("chain input {") :].splitlines()[2:-2]]
        assert body[:2] == ['iif "lo" accept', "ct state established,related accept"]
        assert all(line.startswith("tcp dport { ") for line in body[2:]), body
        for _action, ports in port_sets(text):
            assert all(covers(own, low) and covers(own, high) for low, high in ports)
        assert not any(covers(ports, port) for _action, ports in port_sets(text) for port in (22, 80, 443, 5432))
        assert "policy accept;" in text and "flush" not in text
        assert set(re.findall(r"table (\S+ \S+)", text)) == {"inet ray_vllm_stack"}
        assert port_sets(text)[-1][0] == "drop" and port_sets(text)[-1][1] == merge_ranges(own)


def test_vllm_is_loopback_only_and_head_ports_stay_on_the_head(config):
    policy = firewall_policy(config)
    head_sets = port_sets(ruleset(policy, config.head))
    accepted = [port for action, ports in head_sets if action.endswith("accept") for port in ports]
    assert not covers(accepted, config.ports.vllm) and covers(head_sets[-1][1], config.ports.vllm)
    worker_sets = port_sets(ruleset(policy, config.hosts[1]))
    assert not any(covers(ports, port) for _action, ports in worker_sets for port in (6379, 8000, 8001, 10001))


def test_a_localhost_api_is_dropped_from_outside_and_not_required(raw_config):
    raw_config["security"] = {"api_bind": "localhost"}
    config = config_of(raw_config)
    assert "api_consumers" not in ruleset(firewall_policy(config), config.head)
    assert not any(rule["ports"] == "8000" for rule in required_ports(config.head, config.ports, config.security, config.ray))


def test_required_ports_name_head_and_nodes(config):
    rules = required_ports(config.head, config.ports, config.security, config.ray)
    assert {"ports": "6379", "to": "head", "from": "all nodes", "purpose": "Ray GCS", "head": "10.201.0.11"} in rules
    assert {"ports": "8000", "to": "head", "from": "API consumers", "purpose": "OpenAI-compatible API",
            "head": "10.201.0.11"} in rules  # fmt: skip
    assert any(rule["ports"] == "10002-10100" for rule in rules)
    assert any(rule["ports"] == f"{EPHEMERAL_PORTS[0]}-{EPHEMERAL_PORTS[1]}" for rule in rules)
    assert any(rule["ports"] == "29500-29509" for rule in rules)
    assert not any("8001" in rule["ports"] for rule in rules)  # vLLM's own port: loopback only
    assert not any("8265" in rule["ports"] for rule in rules)  # dashboard off


def test_the_dashboard_follows_its_bind(raw_config):
    raw_config["security"] = {"dashboard_bind": "cluster"}
    config = config_of(raw_config)
    rules = required_ports(config.head, config.ports, config.security, config.ray)
    assert {"ports": "8265", "to": "head", "from": "all nodes, Ray clients", "purpose": "Ray dashboard and job submission",
            "head": "10.201.0.11"} in rules  # fmt: skip
    raw_config["security"] = {"dashboard_bind": "localhost"}
    config = config_of(raw_config)
    assert not any(rule["ports"] == "8265" for rule in required_ports(config.head, config.ports, config.security, config.ray))
    assert covers(port_sets(ruleset(firewall_policy(config), config.head))[-1][1], 8265)  # but dropped from outside


def test_every_configured_port_has_a_rule():
    ports = Ports()
    covered = [port for rule in port_rules(ports, SecurityConfig(), RaySettings()) for port in rule.ports]
    assert all(covers(covered, port) for port in ports.single_ports().values())
    assert covers(covered, ports.min_worker) and covers(covered, ports.max_worker)


def test_port_ranges_round_trip_and_merge():
    ranges = [(6380, 6380), (10002, 10100), (52365, 52365)]
    assert parse_ports(format_ports(ranges)) == ranges
    assert merge_ranges([(8001, 8001), (6379, 6379), (8000, 8000), (6380, 6384), (40000, 40000), (32768, 60999)]) == [
        (6379, 6384), (8000, 8001), (32768, 60999),
    ]  # fmt: skip


def test_firewall_off_means_no_step(raw_config):
    raw_config["security"] = {"firewall": False}
    config = config_of(raw_config)
    inputs = NodeInputs.from_config(config, config.head)
    assert inputs.firewall is None
    assert "firewall" not in [step.name for step in steps_for(inputs)]


def test_firewall_on_is_a_step_right_after_the_system_packages(raw_config):
    config = config_of(raw_config)
    inputs = NodeInputs.from_config(config, config.hosts[1])
    names = [step.name for step in steps_for(inputs)]
    assert names[names.index("system-packages") + 1] == "firewall"
    spec = next(step for step in steps_for(inputs) if step.name == "firewall").build(inputs)
    assert spec.rules == ruleset(firewall_policy(config), config.hosts[1])
    assert spec.ephemeral_ports == EPHEMERAL_PORTS and spec.path == "/etc/ray-vllm-stack/firewall.nft"


def test_nodes_without_config_have_no_firewall(raw_config):
    """Provisioning-only callers (bench, the provisioning example) build inputs without the stack's config."""
    config = config_of(raw_config)
    inputs = NodeInputs(config.head, config.network, "tiny")
    assert "firewall" not in [step.name for step in steps_for(inputs)]
