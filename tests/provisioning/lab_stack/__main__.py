"""Test-only Pulumi program: the `Node` component for each lab host, with the real artifact
resources for the model and the .debs and a two-wheel wheelhouse standing in for a flavor's.

Run by `tests/provisioning/test_lab_engine.py` from a scratch copy with its own file backend;
RVS_LAB_INVENTORY names the inventory, RVS_LAB_MODEL the model folder.
"""

import dataclasses
import os

import pulumi
import yaml

from components.artifacts import DebPackages, ModelArtifact
from components.config import HostConfig, NetworkConfig, SoftwarePins
from components.fingerprint import require_identical
from components.hosts import host_key_policy
from components.node import Node, NodeArgs
from components.node_plan import SYSTEM_PACKAGES
from tests.provisioning.small_wheelhouse import small_wheelhouse


class SmallWheelhouse:
    """The outputs `Node` reads from a `Wheelhouse`, for the test wheelhouse."""

    accelerator = "cpu"

    def __init__(self):
        for field in dataclasses.fields(files := small_wheelhouse()):
            setattr(self, field.name, pulumi.Output.from_input(getattr(files, field.name)))


inventory = yaml.safe_load(open(os.environ["RVS_LAB_INVENTORY"]))["hosts"]
root = os.path.dirname(os.path.dirname(os.environ["RVS_LAB_INVENTORY"]))
hosts = [
    HostConfig.model_validate({**entry, "ssh": {**entry["ssh"], "key_file": os.path.join(root, entry["ssh"]["key_file"])}})
    for entry in inventory[:2]
]
model = ModelArtifact("model", path=os.environ["RVS_LAB_MODEL"])
debs = DebPackages("debs", packages=[*SYSTEM_PACKAGES, "jq"])
wheelhouse = SmallWheelhouse()
nodes = {
    host.name: Node(
        host.name,
        NodeArgs(
            host=host, software=SoftwarePins(), network=NetworkConfig(), wheelhouse=wheelhouse, model=model,
            debs=debs, served_name="tiny-qwen2", host_keys=host_key_policy(host),
        ),
    )
    for host in hosts
}  # fmt: skip
pulumi.export("fingerprints", pulumi.Output.all(**{name: node.fingerprint for name, node in nodes.items()}).apply(require_identical))
pulumi.export("runtime_env", {name: node.runtime_env for name, node in nodes.items()})
pulumi.export("pushed_bytes", {name: node.pushed_bytes for name, node in nodes.items()})
