"""A Pulumi program that provisions lab hosts and serves nothing: the `Node` component on each
inventory host with the stack's artifact resources, no Ray, no vLLM. The bench measures
provisioning with it and the engine tests drive the refresh/up drift cycle with it, each from a
scratch copy with its own backend.

    RVS_INVENTORY        the inventory file (`inventory/dev.yaml` as `python -m lab up` writes it)
    RVS_HOSTS            how many of its hosts (default: all)
    RVS_MODEL            the weights folder
    RVS_SERVED_NAME      the model's name on the nodes
    RVS_WHEELHOUSE       a flavor (`cpu`: the stack's own `Wheelhouse` resource) or the folder of a
                         prebuilt wheelhouse (a smaller package set, for tests and large host counts)
    RVS_EXTRA_PACKAGES   Debian packages besides the nodes' own, space-separated
"""

import os
from pathlib import Path

import pulumi
import yaml

from artifacts.debs import Mirrors
from artifacts.wheels import describe_wheelhouse
from components.artifacts import DebPackages, ModelArtifact, PythonInterpreter, Wheelhouse
from components.node import Node, NodeArgs
from components.stack_inputs import identical_nodes
from deploys.layout import PYTHON_PREFIX
from stack.config import HostConfig, NetworkConfig, PythonSource
from stack.hosts import host_key_policy
from stack.node_steps import SYSTEM_PACKAGES, NodeInputs, pushed_release, pushed_releases


class PrebuiltWheelhouse:
    """What `Node` reads from a `Wheelhouse`, for a wheelhouse folder built elsewhere."""

    accelerator = "cpu"

    def __init__(self, path: str):
        self.path = path

    def files(self) -> pulumi.Output:
        return pulumi.Output.from_input(describe_wheelhouse(Path(self.path)))


def inventory_hosts(path: Path, count: int | None) -> list[HostConfig]:
    """The inventory's hosts, key files resolved against the checkout the inventory belongs to."""
    root = path.resolve().parent.parent
    entries = yaml.safe_load(path.read_text())["hosts"][:count]
    return [
        HostConfig.model_validate({**entry, "ssh": {**entry["ssh"], "key_file": str(root / entry["ssh"]["key_file"])}})
        for entry in entries
    ]


source = os.environ["RVS_WHEELHOUSE"]
wheelhouse = Wheelhouse("wheelhouse", flavor=source) if "/" not in source else PrebuiltWheelhouse(source)
model = ModelArtifact("model", path=os.environ["RVS_MODEL"])
python_source = PythonSource()
python = PythonInterpreter("python", PYTHON_PREFIX, python_source.source, python_source.sha256)
hosts = inventory_hosts(Path(os.environ["RVS_INVENTORY"]), int(os.environ["RVS_HOSTS"]) if "RVS_HOSTS" in os.environ else None)
packages = [*SYSTEM_PACKAGES, *os.environ.get("RVS_EXTRA_PACKAGES", "").split()]
debs = {release: DebPackages(f"debs-{release}", packages, release, Mirrors()) for release in pushed_releases(hosts)}
nodes = {
    host.name: Node(
        host.name,
        NodeArgs(
            inputs=NodeInputs(host=host, network=NetworkConfig(), model_folder=os.environ["RVS_SERVED_NAME"]),
            python=python, wheelhouse=wheelhouse, model=model, debs=debs.get(pushed_release(host)),
            host_keys=host_key_policy(host),
        ),
    )
    for host in hosts
}  # fmt: skip
pulumi.export("fingerprints", pulumi.Output.all(**{name: node.fingerprint for name, node in nodes.items()}).apply(identical_nodes))
pulumi.export("runtime_env", {name: node.runtime_env for name, node in nodes.items()})
pulumi.export("pushed_bytes", {name: node.pushed_bytes for name, node in nodes.items()})
