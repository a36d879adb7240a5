"""Cloud hosts as Pulumi resources: the providers' diffs and outputs without a cloud, the component
under Pulumi's mocks, and instances a user made with pulumi-aws (`aws.ec2.Instance`) feeding the
same Node component as inventory hosts."""

from __future__ import annotations

import json
import subprocess

import pulumi
import pytest

from artifacts.paths import REPO_ROOT
from cloud.aws import Instance
from components.cloud_hosts import (
    ADDRESS_MAP_VARIABLE,
    IngressProvider,
    InstanceProvider,
    address_map_from,
    instance_outputs,
)
from stack.validation import load_stack_config
from tests.components.test_node import ARTIFACT_OUTPUTS, OBSERVED, RecordingMonitor

INSTANCE = {"region": "us-east-1", "endpoint_url": None, "name": "a10g-1", "instance_type": "g5.xlarge",
            "image": "ami-0123456789abcdef0", "disk_gb": 200, "subnet_id": None, "market": "on-demand",
            "key_name": "ray-vllm-stack-aws-pair", "security_group_id": "sg-1", "tags": {"team": "ml"},
            "ssh_wait_s": 600, "address_map": {}}  # fmt: skip


def test_a_new_instance_type_replaces_the_instance_old_one_first():
    diff = InstanceProvider().diff("i-1", INSTANCE, {**INSTANCE, "instance_type": "g6.xlarge"})
    assert (diff.changes, diff.replaces, diff.delete_before_replace) == (True, ["instance_type"], True)
    for key in ("image", "disk_gb", "subnet_id", "market", "region", "endpoint_url"):
        assert InstanceProvider().diff("i-1", INSTANCE, {**INSTANCE, key: "x"}).replaces == [key]


def test_tags_and_hooks_update_in_place_and_nothing_changed_is_no_change():
    diff = InstanceProvider().diff("i-1", INSTANCE, {**INSTANCE, "tags": {"team": "infra"}, "address_map": {"a": "b"}})
    assert (diff.changes, diff.replaces) == (True, [])
    assert InstanceProvider().diff("i-1", INSTANCE, dict(INSTANCE)).changes is False
    rules = [{"from_port": 22, "to_port": 22, "cidrs": ["203.0.113.10/32"], "members": False, "purpose": "SSH"}]
    props = {"region": "us-east-1", "group_id": "sg-1", "rules": rules}
    assert IngressProvider().diff("x", props, {**props, "rules": []}).replaces == []
    assert IngressProvider().diff("x", props, {**props, "group_id": "sg-2"}).replaces == ["group_id"]


def test_the_address_map_points_instances_at_other_hosts(tmp_path):
    instance = Instance("i-1", "running", "g5.xlarge", "172.31.0.5", "54.1.2.3")
    outputs = instance_outputs({**INSTANCE, "address_map": {"54.1.2.3": "10.201.0.12"}}, instance)
    assert (outputs["private_address"], outputs["public_address"]) == ("172.31.0.5", "10.201.0.12")
    assert outputs["reported_addresses"] == {"private": "172.31.0.5", "public": "54.1.2.3"}
    by_name = instance_outputs({**INSTANCE, "address_map": {"a10g-1": "10.201.0.12"}}, instance)
    assert (by_name["private_address"], by_name["public_address"]) == ("10.201.0.12",) * 2  # SSH and cluster: the lab host
    assert address_map_from({}) == {}
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"54.1.2.3": "10.201.0.12", "l40s-1": "10.201.0.11"}))
    assert address_map_from({ADDRESS_MAP_VARIABLE: str(mapping)}) == {"54.1.2.3": "10.201.0.12", "l40s-1": "10.201.0.11"}
    mapping.write_text(json.dumps({"54.1.2.3": "lab2; rm -rf /"}))
    with pytest.raises(ValueError):
        address_map_from({ADDRESS_MAP_VARIABLE: str(mapping)})


@pytest.fixture
def cloud_config(tmp_path):
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "t", "-f", str(key)], check=True)
    group = {"image": "ami-0123456789abcdef0", "os": "ubuntu-24.04"}
    raw = {
        "cloud": {"provider": "aws", "region": "us-east-1", "public_key_file": str(key.with_suffix(".pub")),
                  "ssh_allow_from": ["203.0.113.10/32"],
                  "groups": [{**group, "name": "l40s", "role": "head", "instance_type": "g6e.xlarge"},
                             {**group, "name": "a10g", "instance_type": "g5.xlarge", "tags": {"team": "ml"}}]},
        "model": {"config_json": "models/configs/Qwen2.5-32B-Instruct-AWQ/config.json", "served_name": "q",
                  "huggingface": "Qwen/Qwen2.5-32B-Instruct-AWQ@5c7cb76a268fc6cfbb9c4777eb24ba6e27f9ee6c",
                  "quantization": "awq", "dtype": "float16"},
        "parallelism": {"pipeline_size": 2},
    }  # fmt: skip
    return load_stack_config(raw, set(), REPO_ROOT)


ADDRESSES = {"l40s-1": ("172.31.0.4", "54.0.0.4"), "a10g-1": ("172.31.0.5", "54.0.0.5")}


class CloudMocks(pulumi.runtime.Mocks):
    """Instances get the addresses of `ADDRESSES`, whichever resource made them."""

    def __init__(self):
        self.inputs: dict[str, dict] = {}
        self.types: dict[str, str] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.inputs[args.name] = args.inputs
        self.types[args.name] = args.typ
        host = args.name.removeprefix("cloud-").removesuffix("-instance")
        kind = args.typ.rsplit(":", 1)[-1]
        outputs = dict(args.inputs)
        if args.typ == "aws:ec2/instance:Instance":
            outputs.update(privateIp=ADDRESSES[host][0], publicIp=ADDRESSES[host][1], id=f"i-{host}")
        elif kind == "AwsInstance":
            outputs.update(private_address=ADDRESSES[host][0], public_address=ADDRESSES[host][1], instance_id=f"i-{host}")
        elif kind in ("AwsSecurityGroup", "AwsKeyPair"):
            outputs.update(group_id="sg-1", key_name=args.inputs.get("key_name"))
        elif kind in ARTIFACT_OUTPUTS:
            outputs.update(ARTIFACT_OUTPUTS[kind])
        elif kind in ("NodeStep", "HostFacts"):
            observed = OBSERVED.get(args.inputs["step"], {})
            outputs.update(observed=observed, applied=observed, pushed_bytes=5)
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


@pytest.fixture
def mocks():
    mocks = CloudMocks()
    mocks.monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, preview=False, monitor=mocks.monitor)
    return mocks


def a_node(name, config, addressed, tmp_path):
    from components.artifacts import ModelArtifact, PythonInterpreter, Wheelhouse
    from components.node import Node, NodeArgs
    from deploys.runner import HostKeyPolicy
    from stack.node_steps import NodeInputs

    (tmp_path / "config.json").write_text("{}")
    return Node(name, NodeArgs(
        inputs=NodeInputs.from_config(config, config.host(name), "ray-vllm-stack/aws-pair"),
        python=PythonInterpreter("python", "/opt/ray-vllm-stack/python/3.11.2", "/c/Python-3.11.2.tgz", "7" * 64),
        wheelhouse=Wheelhouse("wheelhouse-nvidia", "nvidia"), model=ModelArtifact("model", path=str(tmp_path)),
        debs=None, host_keys=HostKeyPolicy(),
        addressed=addressed.apply(lambda known: NodeInputs.from_config(known, known.host(name), "ray-vllm-stack/aws-pair")),
    ))  # fmt: skip


@pulumi.runtime.test
def test_pulumi_aws_instances_feed_the_same_node_component(mocks, cloud_config, tmp_path):
    import pulumi_aws as aws

    from components.cluster_hosts import HostAddresses, resolved_config

    instances = {
        host.name: aws.ec2.Instance(f"{host.name}-instance", instance_type={"l40s": "g6e.xlarge", "a10g": "g5.xlarge"}[host.cloud_group],
                                    ami="ami-0123456789abcdef0")
        for host in cloud_config.hosts
    }  # fmt: skip
    addressed = resolved_config(cloud_config, [HostAddresses.from_aws_instance(n, i) for n, i in instances.items()])
    node = a_node("a10g-1", cloud_config, addressed, tmp_path)

    def check(_):
        facts = mocks.inputs["a10g-1-facts"]["host"]
        assert (facts["address"], facts["user"], facts["sudo"]) == ("54.0.0.5", "ubuntu", True)  # SSH: public
        assert mocks.inputs["a10g-1-runtime-env"]["spec"]["address"] == "172.31.0.5"  # the cluster: private
        members = mocks.inputs["a10g-1-firewall"]["spec"]
        assert "172.31.0.4" in json.dumps(members) and "172.31.0.5" in json.dumps(members)
        assert mocks.types["a10g-1-instance"] == "aws:ec2/instance:Instance"

    return node.pushed_bytes.apply(check)


@pulumi.runtime.test
def test_cloud_hosts_component_tags_everything_and_keeps_credentials_out(mocks, cloud_config, monkeypatch):
    from components.cloud_hosts import CloudHosts, CloudHostsArgs

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "never-in-state-0123456789")
    cloud = CloudHosts("cloud", CloudHostsArgs(config=cloud_config, owner="ray-vllm-stack/aws-pair"))

    def check(ids):
        assert ids == {"l40s-1": "i-l40s-1", "a10g-1": "i-a10g-1"}
        inputs = mocks.inputs
        assert inputs["cloud-key-pair"]["key_name"] == "ray-vllm-stack-aws-pair"
        assert inputs["cloud-key-pair"]["public_key"].startswith("ssh-ed25519 ")
        for name in ("cloud-key-pair", "cloud-security-group", "cloud-l40s-1", "cloud-a10g-1"):
            assert inputs[name]["tags"]["ray-vllm-stack:stack"] == "ray-vllm-stack/aws-pair", name
        worker = inputs["cloud-a10g-1"]
        assert (worker["instance_type"], worker["tags"]["team"], worker["ssh_wait_s"]) == ("g5.xlarge", "ml", 600)
        assert worker["security_group_id"] == "sg-1"
        (ssh,) = inputs["cloud-ssh"]["rules"]
        assert (ssh["from_port"], ssh["cidrs"]) == (22, ["203.0.113.10/32"])
        assert {rule["from_port"] for rule in inputs["cloud-cluster-ingress"]["rules"]} >= {6379, 8000, 32768}
        # Instances launch once SSH is open (`up` waits for it), whatever the cluster rules wait for.
        assert any(dep.endswith("::cloud-ssh") for dep in mocks.monitor.registrations["cloud-a10g-1"]["dependencies"])
        assert "never-in-state" not in json.dumps(inputs)

    return cloud.instance_ids.apply(check)
