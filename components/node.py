"""One provisioned node: its facts and every provisioning step, as one Pulumi component.

    node = Node("lab1", NodeArgs(inputs=NodeInputs(host=..., network=..., model_folder=...),
                                 python=..., wheelhouse=..., model=..., debs=...))
    node.fingerprint   # {"python", "python_build", "packages", "weights", "driver", "cuda"}: compare across nodes
    node.runtime_env   # {"GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME", "VLLM_HOST_IP", "NCCL_IB_DISABLE"}

The steps are the host's of `stack.node_steps.NODE_STEPS`, after the host's facts, each waiting for the ones it
names (by default the step before), so a failed preflight stops the node before anything on it
changed while other nodes carry on.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.artifacts import DebPackages, ModelArtifact, PythonInterpreter, Wheelhouse
from components.hosts import HostFacts
from components.provisioning import NodeStep
from deploys.runner import HostKeyPolicy
from stack.disclosed import node_inputs_stated
from stack.fingerprint import fingerprint
from stack.hosts import ssh_target
from stack.node_steps import NodeInputs, pushed_release, steps_for, with_artifacts


@dataclass
class NodeArgs:
    inputs: NodeInputs
    """The host and its settings; its artifacts stay None: they come from the resources below."""
    python: PythonInterpreter
    """The interpreter every node runs (one build for the whole cluster)."""
    wheelhouse: Wheelhouse
    """Built for the host's accelerator (flavor `cpu` or `nvidia`)."""
    model: ModelArtifact
    debs: DebPackages | None
    """The .debs of the host's `os` when it has no route out (`stack.node_steps.pushed_release`); else None."""
    host_keys: HostKeyPolicy
    purge_caches: bool = False
    """Let `destroy` also delete the node's interpreter, wheelhouse and weights."""
    sudo_password: pulumi.Output[str] | None = None
    """The login user's sudo password (a secret), for a host reached through sudo that needs one."""
    addressed: pulumi.Output[NodeInputs] | None = None
    """`inputs` once every host's address is known (from `components.cluster_hosts.resolved_config`):
    a cloud host's own, and its peers' for the firewall. None: `inputs` holds them all already."""


class Node(pulumi.ComponentResource):
    facts: pulumi.Output[dict]
    fingerprint: pulumi.Output[dict]
    runtime_env: pulumi.Output[dict]
    venv_path: pulumi.Output[str]
    model_path: pulumi.Output[str]
    pushed_bytes: pulumi.Output[int]

    def __init__(self, name: str, args: NodeArgs, opts: pulumi.ResourceOptions | None = None):
        # Its inputs state the host, its host-key check and its steps (`stack.disclosed`) to previews and policies.
        super().__init__("ray-vllm-stack:index:Node", name, node_inputs_stated(args.inputs), opts)
        host = args.inputs.host
        if args.wheelhouse.accelerator != host.accelerator:
            raise ValueError(
                f"{host.name} is `{host.accelerator}` but was given the {args.wheelhouse.accelerator} wheelhouse"
            )
        release = pushed_release(host)
        given = args.debs.node_release if args.debs is not None else None
        if given != release:
            raise ValueError(f"{host.name} needs the .debs of {release or 'no release'}, was given {given or 'none'}")
        addressed = args.addressed if args.addressed is not None else pulumi.Output.from_input(args.inputs)
        target = addressed.apply(lambda inputs: ssh_target(inputs.host))
        sudo_password = args.sudo_password if host.ssh.uses_sudo else None
        artifacts = {
            "debs": args.debs.files() if args.debs is not None else pulumi.Output.from_input(None),
            "python": args.python.files(),
            "wheelhouse": args.wheelhouse.files(),
            "model": args.model.files(),
        }
        facts = HostFacts(f"{name}-facts", target, args.host_keys, sudo_password, opts=pulumi.ResourceOptions(parent=self))
        steps: dict[str, NodeStep] = {}
        previous: NodeStep = facts
        for definition in steps_for(args.inputs):
            # Steps are chosen from the static inputs; their specs are built once the addresses are known.
            spec = pulumi.Output.all(addressed, *(artifacts[need] for need in definition.needs)).apply(
                lambda values, definition=definition: _json(
                    definition.build(with_artifacts(values[0], definition, tuple(values[1:])))
                )
            )
            after = [previous] if definition.after is None else [steps[step] for step in definition.after]
            previous = steps[definition.name] = NodeStep(
                f"{name}-{definition.name}", definition.name, target, spec, args.host_keys,
                purge_cache=args.purge_caches, sudo_password=sudo_password,
                opts=pulumi.ResourceOptions(parent=self, depends_on=after),
            )  # fmt: skip

        self.facts = facts.observed
        observed = (steps["python-runtime"], steps["python-env"], steps["model-weights"], facts)
        self.fingerprint = pulumi.Output.all(*(step.observed for step in observed)).apply(
            lambda values: fingerprint(*values)
        )
        self.runtime_env = steps["runtime-env"].observed.apply(lambda values: values.get("env") or {})
        self.venv_path = pulumi.Output.from_input(args.inputs.venv)
        self.model_path = pulumi.Output.from_input(args.inputs.model_path())
        self.pushed_bytes = pulumi.Output.all(*(step.pushed_bytes for step in [facts, *steps.values()])).apply(
            lambda sizes: sum(size or 0 for size in sizes)
        )
        self.register_outputs(
            {
                "facts": self.facts,
                "fingerprint": self.fingerprint,
                "runtime_env": self.runtime_env,
                "venv_path": self.venv_path,
                "model_path": self.model_path,
                "pushed_bytes": self.pushed_bytes,
            }
        )


def _json(spec) -> dict:
    return spec.model_dump(mode="json")
