"""Bench-only Pulumi program: provisioning alone (the `Node` component on every inventory host, with
the stack's artifact resources), no Ray and no vLLM.

Run by `bench.project.BenchProject.provisioning_program` from a scratch copy with its own backend.
RVS_BENCH_INVENTORY names the inventory, RVS_BENCH_MODEL the weights folder, RVS_BENCH_WHEELHOUSE
either a flavor (`cpu`: the stack's own `Wheelhouse` resource) or the folder of a prebuilt
wheelhouse (`bench.package_sets`), for host counts whose venvs the full package set would not fit.
"""

import dataclasses
import os

import pulumi
import yaml

from bench.package_sets import wheelhouse_files
from components.artifacts import DebPackages, ModelArtifact, Wheelhouse
from components.config import HostConfig, NetworkConfig, SoftwarePins
from components.fingerprint import require_identical
from components.hosts import host_key_policy
from components.node import Node, NodeArgs
from components.node_plan import SYSTEM_PACKAGES
from lab.paths import REPO_ROOT


class PrebuiltWheelhouse:
    """The outputs `Node` reads from a `Wheelhouse`, for a wheelhouse folder built by the bench."""

    accelerator = "cpu"

    def __init__(self, path: str):
        files = wheelhouse_files(path)
        for field in dataclasses.fields(files):
            setattr(self, field.name, pulumi.Output.from_input(getattr(files, field.name)))


source = os.environ["RVS_BENCH_WHEELHOUSE"]
wheelhouse = Wheelhouse("wheelhouse", flavor=source) if "/" not in source else PrebuiltWheelhouse(source)
model = ModelArtifact("model", path=os.environ["RVS_BENCH_MODEL"])
debs = DebPackages("debs", packages=list(SYSTEM_PACKAGES))
hosts = [
    HostConfig.model_validate({**entry, "ssh": {**entry["ssh"], "key_file": str(REPO_ROOT / entry["ssh"]["key_file"])}})
    for entry in yaml.safe_load(open(os.environ["RVS_BENCH_INVENTORY"]))["hosts"]
]
nodes = {
    host.name: Node(
        host.name,
        NodeArgs(
            host=host, software=SoftwarePins(), network=NetworkConfig(), wheelhouse=wheelhouse, model=model,
            debs=debs, served_name="bench-weights", host_keys=host_key_policy(host),
        ),
    )
    for host in hosts
}  # fmt: skip
pulumi.export("fingerprints", pulumi.Output.all(**{name: node.fingerprint for name, node in nodes.items()}).apply(require_identical))
pulumi.export("pushed_bytes", {name: node.pushed_bytes for name, node in nodes.items()})
