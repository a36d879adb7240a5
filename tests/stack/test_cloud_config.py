"""The `cloud:` section: every bad input refused at preview with one message naming the key and the
fix (each beside its positive control), and what the rest of the stack makes of a good one: hosts
like the inventory's, planned from their instance types, the security group's rules, the cost."""

from __future__ import annotations

import copy
import subprocess

import pytest

from artifacts.paths import REPO_ROOT
from stack.cloud import hourly_cost, ingress_rules, ssh_rules, with_addresses
from stack.serving import serving_plan
from stack.validation import ConfigError, load_stack_config
from tests.support.lab_nodes import TINY_MODEL

MODEL = {
    "huggingface": "Qwen/Qwen2.5-32B-Instruct-AWQ@5c7cb76a268fc6cfbb9c4777eb24ba6e27f9ee6c",
    "config_json": "models/configs/Qwen2.5-32B-Instruct-AWQ/config.json",
    "served_name": "qwen2.5-32b-awq",
    "dtype": "float16",
    "quantization": "awq",
}


@pytest.fixture
def public_key(tmp_path):
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "t", "-f", str(key)], check=True)
    return key.with_suffix(".pub")


@pytest.fixture
def raw(public_key) -> dict:
    """Pulumi.aws-pair.yaml's shape: an L40S head and an A10G worker for a 32B 4-bit model."""
    group = {"image": "ami-0123456789abcdef0", "os": "ubuntu-24.04", "ssh_user": "ubuntu"}
    return {
        "cloud": {
            "provider": "aws",
            "region": "us-east-1",
            "public_key_file": str(public_key),
            "ssh_allow_from": ["203.0.113.10/32"],
            "groups": [
                {**group, "name": "l40s", "role": "head", "instance_type": "g6e.xlarge"},
                {**group, "name": "a10g", "instance_type": "g5.xlarge"},
            ],
        },
        "model": dict(MODEL),
        "parallelism": {"pipeline_size": 2},
    }


def load(raw: dict):
    return load_stack_config(raw, set(), REPO_ROOT)


def problems_of(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(raw)
    return caught.value.problems


def test_cloud_hosts_are_planned_like_inventory_hosts(raw):
    config = load(raw)
    assert [(h.name, h.role, h.address, h.ssh.user, h.os, h.cloud_group) for h in config.hosts] == [
        ("l40s-1", "head", None, "ubuntu", "ubuntu-24.04", "l40s"),
        ("a10g-1", "worker", None, "ubuntu", "ubuntu-24.04", "a10g"),
    ]
    assert [(gpu.name, gpu.memory_gb) for host in config.hosts for gpu in host.gpus] == [("L40S", 44.7), ("A10G", 22.35)]
    assert config.hosts[0].ssh.key_file == config.cloud.public_key_file.with_suffix("")
    plan = serving_plan(config, "/models/qwen")
    assert (plan.layer_partition, plan.max_model_len) == ([44, 20], 32768)


def test_cpu_instances_are_cpu_hosts_with_the_groups_key_and_route_settings(raw):
    for group in raw["cloud"]["groups"]:
        group.update(instance_type="m7i.2xlarge", host_keys="ignore", route_out=False)
    raw["model"] = {"path": str(TINY_MODEL), "served_name": "tiny-qwen2", "dtype": "bfloat16"}
    raw["security"] = {"allow_unverified_host_keys": True}
    config = load(raw)
    assert {(host.accelerator, len(host.gpus), host.ssh.host_keys, host.route_out) for host in config.hosts} == {
        ("cpu", 0, "ignore", False)
    }
    # The control: without the security setting, `ignore` on a rented host is refused.
    raw["security"] = {}
    assert any("host_keys" in problem for problem in problems_of(raw))


def test_inventory_and_cloud_hosts_mix_in_one_cluster(raw, ssh_key):
    raw["hosts"] = [{"name": "gpu24", "address": "198.51.100.7", "role": "head", "accelerator": "nvidia",
                     "ssh": {"user": "ubuntu", "key_file": str(ssh_key)}, "gpus": [{"name": "RTX 4090", "memory_gb": 24}]}]  # fmt: skip
    raw["cloud"]["groups"] = [raw["cloud"]["groups"][1]]  # the rented A10G joins the owned 24 GB card
    raw["cloud"]["cluster_network"] = "public"
    config = load(raw)
    assert [host.name for host in config.hosts] == ["gpu24", "a10g-1"]
    assert serving_plan(config, "/m").layer_partition is not None
    # At `up`: the instance's public address is its cluster address, and the security group admits the owned host.
    resolved = with_addresses(config, {"a10g-1": {"private": "172.31.0.5", "public": "54.1.2.3"}})
    assert (str(resolved.host("a10g-1").address), resolved.host("a10g-1").ssh.address) == ("54.1.2.3", None)
    rules = ingress_rules(resolved, ["198.51.100.7", "54.1.2.3"])
    gcs = next(rule for rule in rules if rule["from_port"] == 6379)
    assert gcs["members"] and gcs["cidrs"] == ["198.51.100.7/32", "54.1.2.3/32"]


def test_private_cluster_network_keeps_ssh_on_the_public_address(raw):
    config = with_addresses(load(raw), {"l40s-1": {"private": "172.31.0.4", "public": "54.0.0.4"},
                                        "a10g-1": {"private": "172.31.0.5", "public": None}})  # fmt: skip
    head, worker = config.host("l40s-1"), config.host("a10g-1")
    assert (str(head.address), str(head.ssh.address)) == ("172.31.0.4", "54.0.0.4")
    assert (str(worker.address), worker.ssh.address) == ("172.31.0.5", None)  # no public address: SSH goes private


def test_security_group_rules_follow_the_firewall_table(raw):
    config = load(raw)
    assert ssh_rules(config.cloud) == [{"from_port": 22, "to_port": 22, "members": False,
                                        "purpose": "SSH from the controller", "cidrs": ["203.0.113.10/32"]}]  # fmt: skip
    rules = ingress_rules(config, [])
    assert 22 not in {rule["from_port"] for rule in rules}
    by_port = {rule["from_port"]: rule for rule in rules}
    assert by_port[8000]["cidrs"] == ["0.0.0.0/0"] and not by_port[8000]["members"]  # security.api_allow_from
    assert by_port[32768] == {**by_port[32768], "to_port": 60999, "members": True, "cidrs": []}
    assert 8001 not in by_port and 8265 not in by_port  # vLLM's own port and the dashboard stay on loopback


def test_hourly_cost_is_dated_and_marks_estimates(raw):
    cost = hourly_cost(load(raw).cloud)
    assert cost["usd_per_hour"] == 2.867
    assert cost["hosts"]["l40s-1"] == {"instance_type": "g6e.xlarge", "market": "on-demand", "usd_per_hour": 1.861}
    assert "as of 2025-06" in cost["source"] and cost["notes"] == []
    raw["cloud"]["region"] = "eu-west-1"
    raw["cloud"]["groups"][1]["market"] = "spot"
    assert hourly_cost(load(raw).cloud)["notes"] == [
        "spot hosts at their On-Demand price (an upper bound)", "prices are us-east-1's; eu-west-1 may differ"
    ]


BAD_INPUTS = [
    (("groups", 0, "image"), "ami-12345", "cloud.groups[0].image: 'ami-12345' is not allowed; use an AMI id"),
    (("groups", 0, "image"), "ami-0123456789ABCDEF0", "cloud.groups[0].image: 'ami-0123456789ABCDEF0' is not allowed"),
    (("groups", 0, "instance_type"), "g6e.xlarge; rm -rf /", "cloud.groups[0].instance_type: 'g6e.xlarge; rm -rf /' is not allowed; use an EC2 instance type name"),
    (("groups", 0, "instance_type"), "m5.large", "cloud.groups[0].instance_type: m5.large is not in the shipped table, so its GPUs are unknown at preview; use one of: g5.xlarge"),
    (("groups", 0, "name"), "L40S", "cloud.groups[0].name: 'L40S' is not allowed; use lower-case letters, digits and `-`"),
    (("groups", 0, "subnet_id"), "subnet-xyz", "cloud.groups[0].subnet_id: 'subnet-xyz' is not allowed; use a subnet id"),
    (("groups", 0, "ssh_user"), "root -oProxyCommand=x", "cloud.groups[0].ssh_user: 'root -oProxyCommand=x' is not allowed; use a login name"),
    (("groups", 0, "market"), "reserved", "cloud.groups[0].market: unknown value 'reserved'; use one of: on-demand, spot"),
    (("groups", 0, "os"), "centos-7", "cloud.groups[0].os: unknown value 'centos-7'; use one of: debian-12"),
    (("groups", 0, "disk_gb"), 4, "cloud.groups[0].disk_gb: Input should be greater than or equal to 8 (got 4)"),
    (("groups", 0, "count"), 2, "cloud.groups[0].count: l40s is the head's group: its count must be 1 (got 2)"),
    (("groups", 0, "tags"), {"aws:owner": "me"}, "cloud.groups[0].tags: aws:owner: `aws:` keys are AWS's, `Name` and `ray-vllm-stack:` ones the stack's; rename them"),
    (("groups", 0, "tags"), {"team": "ml;reboot"}, "cloud.groups[0].tags.team: 'ml;reboot' is not allowed; use a tag value"),
    (("groups", 0, "tags"), {"bad key": "x"}, "cloud.groups[0].tags.bad key.[key]: 'bad key' is not allowed; use a key of"),
    (("groups", 0, "flavour"), "x", "cloud.groups[0].flavour: unknown key; remove it or fix its spelling"),
    (("groups", 0, "role"), "boss", "cloud.groups[0].role: unknown value 'boss'; use one of: head, worker"),
    (("provider",), "gcp", "cloud.provider: unknown value 'gcp'; use one of: aws"),
    (("region",), "US-EAST-1", "cloud.region: 'US-EAST-1' is not allowed; use an AWS region name such as us-east-1"),
    (("endpoint_url",), "http://127.0.0.1:5000/$(id)", "cloud.endpoint_url: 'http://127.0.0.1:5000/$(id)' is not allowed"),
    (("ssh_allow_from",), [], "cloud.ssh_allow_from: List should have at least 1 item"),
    (("ssh_allow_from",), ["10.0.0.0/33"], "cloud.ssh_allow_from[0]"),
    (("cluster_network",), "vpn", "cloud.cluster_network: unknown value 'vpn'; use one of: private, public"),
    (("ssh_wait_s",), -1, "cloud.ssh_wait_s: Input should be greater than or equal to 0 (got -1)"),
    (("regoin",), "us-east-1", "cloud.regoin: unknown key (did you mean `region`?); remove it or fix its spelling"),
]


@pytest.mark.parametrize(("path", "value", "expected"), BAD_INPUTS, ids=[f"{'.'.join(map(str, p))}={v!r}" for p, v, _ in BAD_INPUTS])
def test_each_bad_input_is_refused_naming_the_key_and_the_fix(raw, path, value, expected):
    assert load(copy.deepcopy(raw)).cloud is not None  # positive control: the same config without the fault loads
    target = raw["cloud"]
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    problems = problems_of(raw)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_key_files_are_checked(raw, public_key):
    raw["cloud"]["public_key_file"] = str(public_key.with_suffix(""))
    assert problems_of(copy.deepcopy(raw)) == [
        f"cloud.public_key_file: {public_key.with_suffix('')} is not a `.pub` file; give the public half of the SSH key"
    ]
    public_key.with_suffix("").unlink()
    raw["cloud"]["public_key_file"] = str(public_key)
    assert problems_of(copy.deepcopy(raw)) == [
        f"cloud.public_key_file: its private half {public_key.with_suffix('')} does not exist; "
        "the stack logs in to the instances with it"
    ]
    public_key.write_text("ssh-ed25519 AAAA key\nsecond line\n")
    assert problems_of(copy.deepcopy(raw))[0].endswith("is not one OpenSSH public key line (ssh-ed25519, ssh-rsa or ecdsa)")
    public_key.unlink()
    assert "does not exist; make a key with `ssh-keygen -t ed25519 -f <path>`" in problems_of(raw)[0]


def test_stack_wide_rules_see_the_cloud_hosts(raw):
    raw["cloud"]["groups"][1]["role"] = "head"
    assert problems_of(copy.deepcopy(raw)) == [
        "hosts: 2 hosts have role `head` (l40s-1, a10g-1); keep exactly one, make the others `worker`"
    ]
    raw["cloud"]["groups"][1].update(role="worker", name="l40s")
    assert problems_of(copy.deepcopy(raw))[0] == "cloud.groups[].name: l40s names 2 groups; give each group its own name"
    raw["cloud"]["groups"][1].update(name="a10g", count=2)
    assert problems_of(raw)[0].startswith("parallelism: pipeline size 2 x tensor size 1 = 2 accelerators, but 3")


def test_only_the_stack_sets_cloud_fields_on_hosts(raw, ssh_key):
    host = {"name": "gpu24", "role": "worker", "accelerator": "nvidia", "ssh": {"key_file": str(ssh_key)},
            "gpus": [{"memory_gb": 24}]}  # fmt: skip
    raw["hosts"] = [{**host, "address": "198.51.100.7", "cloud_group": "l40s"}]
    assert problems_of(copy.deepcopy(raw)) == ["hosts[0].cloud_group: is set by the stack for hosts of `cloud.groups`; remove it"]
    raw["hosts"] = [{**host, "address": None}]
    assert problems_of(raw) == ["hosts[0].address: required for gpu24; only hosts of `cloud.groups` get theirs at `up`"]


def test_a_stack_needs_some_hosts(raw):
    del raw["cloud"]
    assert problems_of(raw) == [
        "hosts: the stack has no hosts; list them in `inventory` (or `hosts`), or rent them with `cloud.groups`"
    ]


def test_instance_types_too_small_for_the_model_are_refused_with_needed_vs_available(raw):
    raw["cloud"]["groups"] = [{**raw["cloud"]["groups"][1], "role": "head"}]
    raw["parallelism"] = {"pipeline_size": 1}
    raw["vllm"] = {"max_model_len": 32768}
    with pytest.raises(ConfigError) as caught:
        serving_plan(load(raw), "/m")
    assert caught.value.problems[0].startswith("hosts[].gpus: the model does not fit")
    assert "GPU 0 (22.35 GB, stage 0" in caught.value.problems[0]
