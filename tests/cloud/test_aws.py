"""EC2 through boto3 against a local moto_server: what the providers call, without Pulumi."""

from __future__ import annotations

import socket
import subprocess

import boto3
import pytest

from cloud import aws


@pytest.fixture
def endpoint(moto_ec2) -> aws.Endpoint:
    return aws.Endpoint("us-east-1", moto_ec2)


@pytest.fixture
def public_key(tmp_path) -> str:
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "t", "-f", str(key)], check=True)
    return key.with_suffix(".pub").read_text().strip()


def no_sleep(_seconds: float) -> None:
    pass


@pytest.fixture
def launched(endpoint, public_key):
    tags = [(aws.STACK_TAG, "ray-vllm-stack/test")]
    aws.import_key_pair(endpoint, "rvs-test", public_key, tags)
    group = aws.create_security_group(endpoint, "rvs-test", aws.vpc_of(endpoint, None), "test", tags)
    spec = aws.InstanceSpec("gpu-1", "g6e.xlarge", "ami-12c6146b", 200, "rvs-test", group, tags=tuple(tags))
    return spec, aws.run_instance(endpoint, spec)


def test_an_instance_runs_tagged_in_its_group_with_both_addresses(endpoint, launched):
    spec, instance_id = launched
    instance = aws.wait_running(endpoint, instance_id, sleep=no_sleep)
    assert (instance.state, instance.instance_type) == ("running", "g6e.xlarge")
    assert instance.private_address and instance.public_address
    item = endpoint.client().describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    tags = {tag["Key"]: tag["Value"] for tag in item["Tags"]}
    assert tags == {"Name": "gpu-1", aws.HOST_TAG: "gpu-1", aws.STACK_TAG: "ray-vllm-stack/test"}
    assert [group["GroupId"] for group in item["NetworkInterfaces"][0]["Groups"]] == [spec.security_group_id]
    assert item["KeyName"] == "rvs-test"


def test_spot_instances_ask_for_the_spot_market(endpoint, launched):
    spec, _ = launched
    instance_id = aws.run_instance(endpoint, aws.InstanceSpec(**{**spec.__dict__, "name": "spot-1", "spot": True}))
    item = endpoint.client().describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert item.get("InstanceLifecycle") == "spot"


def test_made_up_instance_types_and_images_are_refused_naming_the_stage(endpoint, launched):
    spec, _ = launched
    with pytest.raises(aws.CloudError, match=r"launching gpu-2 \(g9.huge\): InvalidInstanceType.NotFound"):
        aws.run_instance(endpoint, aws.InstanceSpec(**{**spec.__dict__, "name": "gpu-2", "instance_type": "g9.huge"}))


def test_ingress_rules_are_set_and_replaced(endpoint, launched):
    spec, _ = launched
    group_id = spec.security_group_id
    first = [{"from_port": 22, "to_port": 22, "cidrs": ["203.0.113.10/32"], "members": False, "purpose": "SSH"},
             {"from_port": 6379.0, "to_port": 6379.0, "cidrs": [], "members": True, "purpose": "Ray GCS"}]  # fmt: skip
    aws.set_ingress(endpoint, group_id, [], first)

    def rules():
        group = endpoint.client().describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        return sorted((r["FromPort"], tuple(i["CidrIp"] for i in r["IpRanges"]), tuple(p["GroupId"] for p in r["UserIdGroupPairs"]))
                      for r in group["IpPermissions"])  # fmt: skip

    assert rules() == [(22, ("203.0.113.10/32",), ()), (6379, (), (group_id,))]
    second = [{**first[0], "cidrs": ["198.51.100.0/24"]}]
    aws.set_ingress(endpoint, group_id, first, second)
    assert rules() == [(22, ("198.51.100.0/24",), ())]


def test_terminate_waits_until_terminated(endpoint, launched):
    _, instance_id = launched
    aws.terminate_instances(endpoint, [instance_id], sleep=no_sleep)
    assert aws.describe_instance(endpoint, instance_id).state == "terminated"
    aws.terminate_instances(endpoint, [instance_id], sleep=no_sleep)  # again: nothing left to do


def test_terminate_refuses_to_return_while_instances_still_run(endpoint, launched, monkeypatch):
    _, instance_id = launched
    stuck = aws.Instance(instance_id, "shutting-down", "g6e.xlarge", "10.0.0.1", None)
    monkeypatch.setattr(aws, "describe_instance", lambda _endpoint, _id: stuck)
    clock = iter(range(0, 10000, 100))
    with pytest.raises(aws.CloudError, match=rf"still not terminated after 900 s: {instance_id} \(shutting-down\); they may still be billed"):
        aws.terminate_instances(endpoint, [instance_id], sleep=no_sleep, clock=lambda: next(clock))


def test_wait_running_stops_on_an_instance_that_will_not_run(endpoint, launched):
    _, instance_id = launched
    endpoint.client().terminate_instances(InstanceIds=[instance_id])
    with pytest.raises(aws.CloudError, match=f"waiting for {instance_id} to run: it is terminated"):
        aws.wait_running(endpoint, instance_id, sleep=no_sleep)


def test_wait_for_ssh_is_bounded_and_injectable():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        aws.wait_for_ssh("127.0.0.1", listener.getsockname()[1], timeout_s=5)  # a real port answers at once
    answers = iter([False, False, True])
    aws.wait_for_ssh("10.9.9.9", 22, timeout_s=60, probe=lambda *_: next(answers), sleep=no_sleep)
    clock = iter(range(0, 1000, 10))
    with pytest.raises(aws.CloudError, match=r"waiting for SSH on 10.9.9.9:22: no answer after 30 s; check .*cloud.ssh_allow_from"):
        aws.wait_for_ssh("10.9.9.9", 22, timeout_s=30, probe=lambda *_: False, sleep=no_sleep, clock=lambda: next(clock))
    aws.wait_for_ssh("10.9.9.9", 22, timeout_s=0, probe=lambda *_: pytest.fail("0 waits not at all"))


def test_missing_credentials_are_an_error_that_shows_none(moto_endpoint, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(aws.CloudError, match="importing key pair k: Unable to locate credentials"):
        aws.import_key_pair(aws.Endpoint("us-east-1", moto_endpoint), "k", "ssh-ed25519 AAAA t", [])


def test_clients_use_the_default_credential_chain(moto_ec2):
    """Nothing in `Endpoint` holds a key: boto3 reads the environment (here moto's fake keys)."""
    endpoint = aws.Endpoint("us-east-1", moto_ec2)
    assert set(vars(endpoint)) == {"region", "endpoint_url"}
    assert endpoint.client().meta.region_name == "us-east-1"
    assert boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_ec2).describe_instances()["Reservations"] == []
