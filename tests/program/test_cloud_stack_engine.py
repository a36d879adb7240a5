"""Cloud hosts through the real Pulumi CLI, offline against a local moto_server: the shipped
`Pulumi.aws-pair.yaml` plans at preview before any instance exists, and the cloud hosts' own
program (`examples/cloud_hosts`) creates, replaces and terminates instances in moto. Nothing is
provisioned: moto boots nothing."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from artifacts.paths import REPO_ROOT
from tests.support.moto_ec2 import FAKE_CREDENTIALS, MOTO_AMI, instances, on_moto, running

pytestmark = pytest.mark.engine

CLOUD_PROGRAM = REPO_ROOT / "examples" / "cloud_hosts" / "__main__.py"



def ssh_key_pair(directory: Path) -> Path:
    """A fresh ed25519 key; returns the public half's path."""
    key = directory / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rvs-test", "-f", str(key)], check=True)
    return key.with_suffix(".pub")


def aws_pair_config(tmp_path: Path, endpoint: str, **cloud) -> dict:
    document = yaml.safe_load((REPO_ROOT / "Pulumi.aws-pair.yaml").read_text())["config"]
    config = {key.split(":", 1)[1]: value for key, value in document.items()}
    config["cloud"] = {**config["cloud"], "public_key_file": str(ssh_key_pair(tmp_path)), "endpoint_url": endpoint,
                       **cloud}  # fmt: skip
    return config


def test_preview_of_aws_pair_plans_the_split_before_any_instance(pulumi_project, tmp_path, moto_ec2):
    on_moto(pulumi_project, moto_ec2)
    pulumi_project.new_stack("aws-pair", aws_pair_config(tmp_path, moto_ec2))
    preview = json.loads(pulumi_project.run("preview", "--json").stdout)
    created = {step["urn"].split("::")[-1] for step in preview["steps"] if step["op"] == "create"}
    assert {"cloud-key-pair", "cloud-security-group", "cloud-ssh", "cloud-cluster-ingress", "cloud-l40s-1", "cloud-a10g-1"} <= created
    # The rented hosts are nodes like any other: the same steps, waiting for their addresses.
    assert {"l40s-1-nvidia-preflight", "a10g-1-model-weights", "serving-release"} <= created
    text = pulumi_project.run("preview").stdout
    partition = re.search(r"layer_partition: \[\s*\[0\]: (\d+)\s*\[1\]: (\d+)\s*\]", text)
    assert partition and partition.groups() == ("44", "20"), text  # the L40S carries more layers than the A10G
    assert re.search(r"max_model_len\s*: 32768", text), text
    assert "2.867" in text and "as of 2025-06" in text, text  # the hourly estimate, dated
    assert instances(pulumi_project.ec2) == {}  # preview created nothing
    assert pulumi_project.resources() == []


def test_preview_refuses_instance_types_whose_gpus_cannot_hold_the_model(pulumi_project, tmp_path, moto_ec2):
    on_moto(pulumi_project, moto_ec2)
    config = aws_pair_config(tmp_path, moto_ec2)
    config["parallelism"] = {"pipeline_size": 1}
    config["cloud"]["groups"] = [{**config["cloud"]["groups"][1], "role": "head"}]  # one A10G alone
    config["vllm"] = {"max_model_len": 32768}
    pulumi_project.new_stack("too-small", config)
    result = pulumi_project.run("preview", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "hosts[].gpus: the model does not fit" in output, output
    assert "needs" in output and "has" in output and "Traceback" not in output


def cloud_only(pulumi_project) -> None:
    """The project's program replaced with the cloud hosts' own: instances, nothing provisioned."""
    (pulumi_project.workdir / "__main__.py").write_text(CLOUD_PROGRAM.read_text())
    (pulumi_project.workdir / "examples").symlink_to(REPO_ROOT / "examples")


def test_up_replace_and_destroy_of_cloud_instances_in_moto(pulumi_project, tmp_path, moto_ec2):
    on_moto(pulumi_project, moto_ec2)
    cloud_only(pulumi_project)
    config = aws_pair_config(tmp_path, moto_ec2, ssh_wait_s=0)  # moto boots nothing: no sshd to wait for
    for group in config["cloud"]["groups"]:
        group["image"] = MOTO_AMI
    pulumi_project.new_stack("aws-pair", config)
    ec2 = pulumi_project.ec2

    pulumi_project.run("up", "--yes", "--skip-preview")
    first = running(ec2)
    assert sorted((item["type"], item["tags"]["Name"]) for item in first.values()) == [
        ("g5.xlarge", "a10g-1"), ("g6e.xlarge", "l40s-1")
    ]
    assert all(item["tags"]["ray-vllm-stack:stack"] == "ray-vllm-stack/aws-pair" for item in first.values())
    outputs = json.loads(pulumi_project.run("stack", "output", "--json").stdout)
    assert set(outputs["hosts"]) == {"l40s-1", "a10g-1"} and outputs["hourly_cost"]["usd_per_hour"] == 2.867
    assert {item["instance_id"] for item in outputs["hosts"].values()} == set(first)
    group = ec2.describe_security_groups(GroupIds=[outputs["security_group_id"]])["SecurityGroups"][0]
    ports = {(rule["FromPort"], rule["ToPort"]) for rule in group["IpPermissions"]}
    assert {(22, 22), (6379, 6379), (8000, 8000), (32768, 60999)} <= ports
    ssh = next(rule for rule in group["IpPermissions"] if rule["FromPort"] == 22)
    assert [r["CidrIp"] for r in ssh["IpRanges"]] == ["203.0.113.10/32"] and not ssh["UserIdGroupPairs"]
    assert {tag["Key"]: tag["Value"] for tag in group["Tags"]}["ray-vllm-stack:stack"] == "ray-vllm-stack/aws-pair"
    state = json.dumps(pulumi_project.resources())
    assert FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in state.replace('"testing"', "")  # no credential in state
    assert "aws_secret_access_key" not in state.lower() and "AWS_SESSION_TOKEN" not in state

    # A new instance type is a new instance: the old one is terminated, the other host untouched.
    config["cloud"]["groups"][1]["instance_type"] = "g6.xlarge"
    pulumi_project.new_stack_config("aws-pair", config)
    preview = json.loads(pulumi_project.run("preview", "--json").stdout)
    ops = {step["urn"].split("::")[-1]: step["op"] for step in preview["steps"] if step["op"] != "same"}
    assert ops.get("cloud-a10g-1") in ("replace", "delete-replaced", "create-replacement") and "cloud-l40s-1" not in ops
    pulumi_project.run("up", "--yes", "--skip-preview")
    second = running(ec2)
    old_worker = next(key for key, item in first.items() if item["type"] == "g5.xlarge")
    assert instances(ec2)[old_worker]["state"] == "terminated"
    assert sorted(item["type"] for item in second.values()) == ["g6.xlarge", "g6e.xlarge"]
    assert set(first) & set(second) == {next(key for key, item in first.items() if item["type"] == "g6e.xlarge")}

    pulumi_project.run("destroy", "--yes", "--skip-preview")
    assert running(ec2) == {}
    assert all(item["state"] == "terminated" for item in instances(ec2).values())
    assert ec2.describe_key_pairs()["KeyPairs"] == []
    assert [g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]] == ["default"]
    assert pulumi_project.resources() == []
