"""The whole cloud path offline, in the cluster the seed's user builds (their own box plus a rented
one), with one `pulumi up` and one `pulumi destroy`: the head is an inventory host (lab1); moto_server
creates the key pair, the security group and the worker's instance, which is mapped to lab2
(`RVS_CLOUD_ADDRESS_MAP`, moto boots nothing) and whose SSH `up` waits for; both hosts are
provisioned, Ray and vLLM start across them, and a chat completion is served. `destroy` terminates
the instance and leaves no service on either host.

The stack is named `dev`, like the served stack of the later tests, so the hosts' owner record
(`<project>/<stack>`) lets that stack follow on the same hosts once this one is destroyed; their
caches (wheelhouse, interpreter, weights) stay for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lab import api
from lab.paths import SSH_KEY
from tests.program.conftest import PulumiProject, dev_stack_config
from tests.support.lab_nodes import TINY_MODEL
from tests.support.moto_ec2 import MOTO_AMI, instances, on_moto, running
from tools.chat import chat

pytestmark = [pytest.mark.lab, pytest.mark.engine]

INSTANCE_TYPE = "m7i.2xlarge"
"""A CPU instance type: the lab's hosts serve with vLLM's CPU build."""


def mixed_config(endpoint: str, owned, rented, inventory: Path) -> dict:
    """The dev stack's settings with the head listed (the user's own host) and the worker rented: a
    group whose release and login user it declares as a user declares their image's."""
    config = dev_stack_config()
    listed = yaml.safe_load(Path(config["inventory"]).read_text())
    inventory.write_text(yaml.safe_dump({"hosts": [host for host in listed["hosts"] if host["name"] == owned.name]}))
    config["inventory"] = str(inventory)
    config["model"] = {**config["model"], "path": str(TINY_MODEL)}
    # Lab hosts get new keys at every `lab up`, as recycled cloud addresses do.
    config["security"] = {**config["security"], "allow_unverified_host_keys": True}
    group = {"name": "rented", "role": "worker", "instance_type": INSTANCE_TYPE, "image": MOTO_AMI, "os": rented.os,
             "ssh_user": "rvs", "host_keys": "ignore", "route_out": False, "disk_gb": 20}  # fmt: skip
    config["cloud"] = {"provider": "aws", "region": "us-east-1", "endpoint_url": endpoint,
                       "public_key_file": str(SSH_KEY.with_suffix(".pub")), "ssh_allow_from": ["10.201.0.0/24"],
                       "cluster_network": "public", "ssh_wait_s": 120, "groups": [group]}  # fmt: skip
    return config


def test_one_up_rents_provisions_and_serves_beside_an_owned_host_and_one_destroy_ends_the_rent(
    lab_hosts, moto_ec2, tmp_path
):
    owned, rented = lab_hosts
    project = PulumiProject(tmp_path)
    on_moto(project, moto_ec2)
    address_map = tmp_path / "addresses.json"
    address_map.write_text(json.dumps({"rented-1": rented.address}))
    project.env["RVS_CLOUD_ADDRESS_MAP"] = str(address_map)
    project.new_stack("dev", mixed_config(moto_ec2, owned, rented, tmp_path / "inventory.yaml"))
    try:
        project.run("up", "--yes", "--skip-preview")
        outputs = json.loads(project.run("stack", "output", "--json", "--show-secrets").stdout)
        instance = running(project.ec2)
        assert [item["type"] for item in instance.values()] == [INSTANCE_TYPE]
        assert all(item["tags"].get("ray-vllm-stack:stack") == "ray-vllm-stack/dev" for item in instance.values()), instance
        assert outputs["hourly_cost"]["usd_per_hour"] == 0.4032, outputs["hourly_cost"]  # the owned host costs nothing here
        assert [(node["name"], node["role"]) for node in outputs["nodes"]] == [(owned.name, "head"), ("rented-1", "worker")]
        assert chat(outputs["openai_base_url"], outputs["api_key"], outputs["model"], "Hello!").strip()
    finally:
        project.run("destroy", "--yes", "--skip-preview")
    assert instance and not running(project.ec2)
    assert {item["state"] for item in instances(project.ec2).values()} == {"terminated"}
    for host in lab_hosts:
        processes = api.run_on(host.name, "pgrep -af '[r]aylet|[v]llm.entrypoints' || true").stdout
        assert processes.strip() == "", processes
