"""The whole cloud path offline, with one `pulumi up` and one `pulumi destroy`: moto_server creates
the key pair, the security group and two instances; each instance is mapped to a lab host
(`RVS_CLOUD_ADDRESS_MAP`, moto boots nothing), whose SSH `up` waits for; the hosts are provisioned,
Ray and vLLM start, and a chat completion is served. `destroy` terminates the instances and leaves
no service on the hosts.

The stack is named `dev`, like the served stack of the later tests, so the hosts' owner record
(`<project>/<stack>`) lets that stack follow on the same hosts once this one is destroyed; their
caches (wheelhouse, interpreter, weights) stay for it."""

from __future__ import annotations

import json

import pytest

from lab import api
from lab.paths import SSH_KEY
from tests.program.conftest import PulumiProject, dev_stack_config
from tests.program.test_cloud_stack_engine import MOTO_AMI, instances, on_moto, running
from tests.support.lab_nodes import TINY_MODEL
from tools.chat import chat

pytestmark = [pytest.mark.lab, pytest.mark.engine]

INSTANCE_TYPE = "m7i.2xlarge"
"""A CPU instance type: the lab's hosts serve with vLLM's CPU build."""


def lab_cloud_config(endpoint: str, hosts) -> dict:
    """The dev stack's settings with its hosts rented instead of listed: one group per lab host, whose
    release and login user it declares as a user declares their image's."""
    config = dev_stack_config()
    del config["inventory"]
    config["model"] = {**config["model"], "path": str(TINY_MODEL)}
    # Lab hosts get new keys at every `lab up`, as recycled cloud addresses do.
    config["security"] = {**config["security"], "allow_unverified_host_keys": True}
    groups = [
        {"name": f"lab-{host.role}", "role": host.role, "instance_type": INSTANCE_TYPE, "image": MOTO_AMI, "os": host.os,
         "ssh_user": "rvs", "host_keys": "ignore", "route_out": False, "disk_gb": 20}
        for host in hosts
    ]  # fmt: skip
    config["cloud"] = {"provider": "aws", "region": "us-east-1", "endpoint_url": endpoint,
                       "public_key_file": str(SSH_KEY.with_suffix(".pub")), "ssh_allow_from": ["10.201.0.0/24"],
                       "cluster_network": "private", "ssh_wait_s": 120, "groups": groups}  # fmt: skip
    return config


def test_one_up_rents_provisions_and_serves_and_one_destroy_ends_the_rent(lab_hosts, moto_ec2, tmp_path):
    project = PulumiProject(tmp_path)
    on_moto(project, moto_ec2)
    address_map = tmp_path / "addresses.json"
    address_map.write_text(json.dumps({f"lab-{host.role}-1": host.address for host in lab_hosts}))
    project.env["RVS_CLOUD_ADDRESS_MAP"] = str(address_map)
    project.new_stack("dev", lab_cloud_config(moto_ec2, lab_hosts))
    try:
        project.run("up", "--yes", "--skip-preview")
        outputs = json.loads(project.run("stack", "output", "--json", "--show-secrets").stdout)
        rented = running(project.ec2)
        assert sorted(item["type"] for item in rented.values()) == [INSTANCE_TYPE] * 2
        assert all(item["tags"].get("ray-vllm-stack:stack") == "ray-vllm-stack/dev" for item in rented.values()), rented
        assert outputs["hourly_cost"]["usd_per_hour"] == 2 * 0.4032, outputs["hourly_cost"]
        assert chat(outputs["openai_base_url"], outputs["api_key"], outputs["model"], "Hello!").strip()
    finally:
        project.run("destroy", "--yes", "--skip-preview")
    assert rented and not running(project.ec2)
    assert {item["state"] for item in instances(project.ec2).values()} == {"terminated"}
    for host in lab_hosts:
        processes = api.run_on(host.name, "pgrep -af '[r]aylet|[v]llm.entrypoints' || true").stdout
        assert processes.strip() == "", processes
