"""EC2 through the official SDK (boto3): the key pair, the security group and the GPU instances of a
stack, as plain functions the Pulumi providers (`components/cloud_hosts.py`) call and the tests drive
against a local `moto_server`.

Credentials come the usual way, boto3's default chain (environment, profile, SSO, instance role):
nothing here takes, returns or logs one, so nothing of them reaches Pulumi's state. What a call
needs is the region and, for an AWS-compatible API (moto in the tests), `endpoint_url`.

Errors name the stage and the ids involved (`CloudError`), never a credential: botocore's messages
carry the API's error code and text only.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

STACK_TAG = "ray-vllm-stack:stack"
"""`<project>/<stack>` on everything a stack creates: what `destroy` and a person in the console go by."""
HOST_TAG = "ray-vllm-stack:host"

Sleep = Callable[[float], None]
Probe = Callable[[str, int, float], bool]
"""(address, port, timeout in s) -> whether a TCP connection opened."""


class CloudError(RuntimeError):
    """An EC2 call or wait failed; the message names the stage and the ids."""


@dataclass(frozen=True)
class Endpoint:
    """Which EC2 API a call goes to; the credentials are boto3's own business."""

    region: str
    endpoint_url: str | None = None

    def client(self):
        """A new session and client per call: a provider is pickled into state, a client must never be,
        and boto3's default session would keep the first credentials it found (an SSO token expires)."""
        return boto3.session.Session().client("ec2", region_name=self.region, endpoint_url=self.endpoint_url)


@dataclass(frozen=True)
class InstanceSpec:
    name: str
    """The host's name: the `Name` tag and the `HOST_TAG`."""
    instance_type: str
    image: str
    disk_gb: int
    key_name: str
    security_group_id: str
    subnet_id: str | None = None
    spot: bool = False
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Instance:
    instance_id: str
    state: str
    instance_type: str
    private_address: str | None
    public_address: str | None


def tag_list(tags: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags]


def tag_specifications(kind: str, tags: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """EC2 refuses a tag specification without tags."""
    listed = tag_list(tags)
    return [{"ResourceType": kind, "Tags": listed}] if listed else []


def _call(stage: str, function: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return function(**kwargs)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "Unknown")
        message = error.response.get("Error", {}).get("Message", "")
        raise CloudError(f"{stage}: {code}: {message}") from None
    except BotoCoreError as error:  # no credentials, no endpoint, a timeout: botocore says which
        raise CloudError(f"{stage}: {error}") from None


def import_key_pair(endpoint: Endpoint, name: str, public_key: str, tags: Iterable[tuple[str, str]]) -> str:
    """Imports the public half of the stack's SSH key; returns the key pair's id."""
    answer = _call(
        f"importing key pair {name}", endpoint.client().import_key_pair,
        KeyName=name, PublicKeyMaterial=public_key.encode(),
        TagSpecifications=tag_specifications("key-pair", tags),
    )  # fmt: skip
    return answer["KeyPairId"]


def delete_key_pair(endpoint: Endpoint, name: str) -> None:
    _call(f"deleting key pair {name}", endpoint.client().delete_key_pair, KeyName=name)


def vpc_of(endpoint: Endpoint, subnet_id: str | None) -> str:
    """The subnet's VPC, or the region's default VPC without a subnet."""
    client = endpoint.client()
    if subnet_id is not None:
        subnets = _call(f"finding subnet {subnet_id}", client.describe_subnets, SubnetIds=[subnet_id])["Subnets"]
        return subnets[0]["VpcId"]
    vpcs = _call("finding the default VPC", client.describe_vpcs, Filters=[{"Name": "is-default", "Values": ["true"]}])
    if not vpcs["Vpcs"]:
        raise CloudError(f"finding the default VPC: {endpoint.region} has none; set `subnet_id` on every cloud group")
    return vpcs["Vpcs"][0]["VpcId"]


def create_security_group(
    endpoint: Endpoint, name: str, vpc_id: str, description: str, tags: Iterable[tuple[str, str]]
) -> str:
    answer = _call(
        f"creating security group {name}", endpoint.client().create_security_group,
        GroupName=name, Description=description, VpcId=vpc_id,
        TagSpecifications=tag_specifications("security-group", tags),
    )  # fmt: skip
    return answer["GroupId"]


def ip_permissions(group_id: str, rules: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """EC2's form of `stack.cloud.ingress_rules`: `{"from_port", "to_port", "cidrs", "members", "purpose"}`;
    `members` admits the group itself (every instance of the stack)."""
    permissions = []
    for rule in rules:
        permission: dict[str, Any] = {
            "IpProtocol": "tcp",
            "FromPort": int(rule["from_port"]),  # Pulumi's state hands numbers back as floats
            "ToPort": int(rule["to_port"]),
            "IpRanges": [{"CidrIp": cidr, "Description": rule["purpose"][:255]} for cidr in rule["cidrs"]],
        }
        if rule.get("members"):
            permission["UserIdGroupPairs"] = [{"GroupId": group_id, "Description": rule["purpose"][:255]}]
        permissions.append(permission)
    return permissions


def set_ingress(endpoint: Endpoint, group_id: str, old: list[dict], new: list[dict]) -> None:
    """Replaces the group's ingress rules `old` with `new` (rules in `ip_permissions`' input form)."""
    client = endpoint.client()
    if old:
        _call(f"revoking ingress of {group_id}", client.revoke_security_group_ingress,
              GroupId=group_id, IpPermissions=ip_permissions(group_id, old))  # fmt: skip
    if new:
        _call(f"authorizing ingress of {group_id}", client.authorize_security_group_ingress,
              GroupId=group_id, IpPermissions=ip_permissions(group_id, new))  # fmt: skip


def delete_security_group(endpoint: Endpoint, group_id: str) -> None:
    _call(f"deleting security group {group_id}", endpoint.client().delete_security_group, GroupId=group_id)


def run_instance(endpoint: Endpoint, spec: InstanceSpec) -> str:
    """Launches one instance; returns its id at once (`wait_running` waits for it)."""
    tags = tag_list((("Name", spec.name), (HOST_TAG, spec.name), *spec.tags))
    request: dict[str, Any] = {
        "ImageId": spec.image,
        "InstanceType": spec.instance_type,
        "MinCount": 1,
        "MaxCount": 1,
        "KeyName": spec.key_name,
        "BlockDeviceMappings": [
            {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": spec.disk_gb, "VolumeType": "gp3", "DeleteOnTermination": True}}
        ],
        "TagSpecifications": [{"ResourceType": kind, "Tags": tags} for kind in ("instance", "volume")],
    }
    interface: dict[str, Any] = {"DeviceIndex": 0, "Groups": [spec.security_group_id], "AssociatePublicIpAddress": True}
    if spec.subnet_id is not None:
        interface["SubnetId"] = spec.subnet_id
    request["NetworkInterfaces"] = [interface]
    if spec.spot:
        # One-time and terminated on interruption: the stack's `up` replaces a lost host.
        request["InstanceMarketOptions"] = {
            "MarketType": "spot",
            "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
        }
    answer = _call(f"launching {spec.name} ({spec.instance_type})", endpoint.client().run_instances, **request)
    return answer["Instances"][0]["InstanceId"]


def describe_instance(endpoint: Endpoint, instance_id: str) -> Instance | None:
    """The instance as EC2 sees it now; None when EC2 no longer knows it."""
    try:
        answer = endpoint.client().describe_instances(InstanceIds=[instance_id])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "InvalidInstanceID.NotFound":
            return None
        raise CloudError(f"describing {instance_id}: {error.response.get('Error', {}).get('Message', '')}") from None
    except BotoCoreError as error:
        raise CloudError(f"describing {instance_id}: {error}") from None
    found = [item for reservation in answer["Reservations"] for item in reservation["Instances"]]
    if not found:
        return None
    item = found[0]
    return Instance(
        instance_id=item["InstanceId"],
        state=item["State"]["Name"],
        instance_type=item["InstanceType"],
        private_address=item.get("PrivateIpAddress"),
        public_address=item.get("PublicIpAddress"),
    )


def wait_running(
    endpoint: Endpoint, instance_id: str, timeout_s: float = 600, sleep: Sleep = time.sleep, clock=time.monotonic
) -> Instance:
    """Polls until the instance runs; a state it cannot leave toward running, or the timeout, raises."""
    deadline = clock() + timeout_s
    while True:
        instance = describe_instance(endpoint, instance_id)
        state = instance.state if instance else "gone"
        if state == "running":
            return instance
        if state in ("shutting-down", "terminated", "stopping", "stopped", "gone"):
            raise CloudError(f"waiting for {instance_id} to run: it is {state} (spot capacity taken back, or a quota?)")
        if clock() >= deadline:
            raise CloudError(f"waiting for {instance_id} to run: still {state} after {timeout_s:.0f} s")
        sleep(5)


def tcp_probe(address: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_ssh(
    address: str,
    port: int = 22,
    timeout_s: float = 600,
    probe: Probe = tcp_probe,
    sleep: Sleep = time.sleep,
    clock=time.monotonic,
) -> None:
    """Until the address accepts TCP on the SSH port (sshd starts a minute or two after `running`).
    `timeout_s` 0 skips the wait; `probe` is injectable (tests, a harness mapping instances to hosts)."""
    if timeout_s <= 0:
        return
    deadline = clock() + timeout_s
    while not probe(address, port, 5):
        if clock() >= deadline:
            raise CloudError(
                f"waiting for SSH on {address}:{port}: no answer after {timeout_s:.0f} s; check the security "
                "group's SSH source (cloud.ssh_allow_from) and that the image runs sshd"
            )
        sleep(5)


def terminate_instances(
    endpoint: Endpoint, instance_ids: list[str], timeout_s: float = 900, sleep: Sleep = time.sleep, clock=time.monotonic
) -> None:
    """Terminates and waits until EC2 reports every one terminated (or forgotten): billing stops then.
    Any still not terminated at the timeout raise with their ids, so `destroy` fails loudly and the
    resources stay in state for the next `destroy`, never left running silently."""
    if not instance_ids:
        return
    client = endpoint.client()
    try:
        client.terminate_instances(InstanceIds=instance_ids)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "InvalidInstanceID.NotFound":
            raise CloudError(f"terminating {', '.join(instance_ids)}: {error.response['Error'].get('Message', '')}") from None
    except BotoCoreError as error:
        raise CloudError(f"terminating {', '.join(instance_ids)}: {error}") from None
    deadline = clock() + timeout_s
    while True:
        left = {}
        for instance_id in instance_ids:
            instance = describe_instance(endpoint, instance_id)
            if instance is not None and instance.state != "terminated":
                left[instance_id] = instance.state
        if not left:
            return
        if clock() >= deadline:
            states = ", ".join(f"{instance_id} ({state})" for instance_id, state in sorted(left.items()))
            raise CloudError(
                f"terminating: still not terminated after {timeout_s:.0f} s: {states}; they may still be billed. "
                "Run `pulumi destroy` again, or terminate them in the EC2 console"
            )
        sleep(5)


def set_tags(endpoint: Endpoint, resource_id: str, old: dict[str, str], new: dict[str, str]) -> None:
    client = endpoint.client()
    removed = [key for key in old if key not in new]
    if removed:
        _call(f"untagging {resource_id}", client.delete_tags, Resources=[resource_id], Tags=[{"Key": k} for k in removed])
    if new:
        _call(f"tagging {resource_id}", client.create_tags, Resources=[resource_id], Tags=tag_list(new.items()))
