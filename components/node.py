"""One provisioned node: its facts and every provisioning step, as one Pulumi component.

    node = Node("lab1", NodeArgs(host=..., software=..., network=..., wheelhouse=..., model=...,
                                 debs=..., served_name="tiny-qwen2"))
    node.fingerprint   # {"python", "packages", "weights", "driver", "cuda"}: compare across nodes
    node.runtime_env   # {"GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME", "VLLM_HOST_IP", "NCCL_IB_DISABLE"}

Steps run in order (facts, nvidia preflight on GPU hosts, system packages, Python runtime, Python
environment, model weights, runtime environment), each waiting for the one before, so a failed
preflight stops the node before anything on it changed while other nodes carry on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from components import node_plan
from components.artifacts import DebPackages, ModelArtifact, Wheelhouse
from components.config import HostConfig, NetworkConfig, SoftwarePins
from components.debs import DebFiles
from components.fingerprint import fingerprint
from components.hosts import HostFacts
from components.model_source import ModelFiles
from components.provisioning import NodeStep
from components.wheels import WheelhouseFiles
from deploys.layout import MODELS_ROOT, VENV
from deploys.runner import HostKeyPolicy
from deploys.specs import DebFile, NvidiaDriverInstall


@dataclass
class NodeArgs:
    host: HostConfig
    software: SoftwarePins
    network: NetworkConfig
    wheelhouse: Wheelhouse
    """Built for the host's accelerator (flavor `cpu` or `nvidia`)."""
    model: ModelArtifact
    debs: DebPackages
    served_name: str
    """The model's folder name on the node, under `models_root`."""
    models_root: str = MODELS_ROOT
    keep_previous_models: int = 1
    env_overrides: dict[str, str] = field(default_factory=dict)
    """Any runtime variable, set after the detected ones (GLOO/NCCL_SOCKET_IFNAME, VLLM_HOST_IP...)."""
    driver_install: NvidiaDriverInstall | None = None
    host_keys: HostKeyPolicy = field(default_factory=HostKeyPolicy)
    purge_caches: bool = False
    """Let `destroy` also delete the node's wheelhouse and weights."""


class Node(pulumi.ComponentResource):
    facts: pulumi.Output[dict]
    fingerprint: pulumi.Output[dict]
    runtime_env: pulumi.Output[dict]
    venv_path: pulumi.Output[str]
    model_path: pulumi.Output[str]
    pushed_bytes: pulumi.Output[int]

    def __init__(self, name: str, args: NodeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ray-vllm-stack:index:Node", name, None, opts)
        host = args.host
        if args.wheelhouse.accelerator != host.accelerator:
            raise ValueError(
                f"{host.name} is `{host.accelerator}` but was given the {args.wheelhouse.accelerator} wheelhouse"
            )
        steps: list[NodeStep] = []

        def step(kind: str, spec: pulumi.Input[dict] | None, after: list[NodeStep] | None = None) -> NodeStep:
            """A step run after `after` (default: the step before it)."""
            options = pulumi.ResourceOptions(parent=self, depends_on=steps[-1:] if after is None else after)
            created = NodeStep(
                f"{name}-{kind}", kind, host, spec, args.host_keys, purge_cache=args.purge_caches, opts=options
            )
            steps.append(created)
            return created

        facts = HostFacts(f"{name}-facts", host, args.host_keys, opts=pulumi.ResourceOptions(parent=self))
        steps.append(facts)
        nvidia = node_plan.nvidia_spec(host, args.driver_install)
        if nvidia is not None:
            step("nvidia-preflight", nvidia.model_dump(mode="json"))
        step("system-packages", _debs_files(args.debs).apply(lambda debs: _json(node_plan.system_packages_spec(debs))))
        runtime = step("python-runtime", _json(node_plan.python_runtime_spec(args.software)))
        env = step(
            "python-env", _wheelhouse_files(args.wheelhouse).apply(lambda files: _json(node_plan.python_env_spec(files)))
        )
        weights = step(
            "model-weights",
            _model_files(args.model).apply(
                lambda files: _json(
                    node_plan.model_weights_spec(files, args.served_name, args.models_root, args.keep_previous_models)
                )
            ),
            after=[runtime],  # weights need no venv: they stream while pip installs
        )
        runtime_env = step(
            "runtime-env", _json(node_plan.runtime_env_spec(host, args.network, args.env_overrides)), after=[env, weights]
        )

        self.facts = facts.observed
        self.fingerprint = pulumi.Output.all(runtime.observed, env.observed, weights.observed, facts.observed).apply(
            lambda observed: fingerprint(*observed)
        )
        self.runtime_env = runtime_env.observed.apply(lambda observed: observed.get("env") or {})
        self.venv_path = pulumi.Output.from_input(VENV)
        self.model_path = pulumi.Output.from_input(f"{args.models_root.rstrip('/')}/{args.served_name}")
        self.pushed_bytes = pulumi.Output.all(*(s.pushed_bytes for s in steps)).apply(
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


def _wheelhouse_files(wheelhouse: Wheelhouse) -> pulumi.Output[WheelhouseFiles]:
    return pulumi.Output.all(
        path=wheelhouse.path,
        key=wheelhouse.key,
        lock_file=wheelhouse.lock_file,
        plugin_wheels=wheelhouse.plugin_wheels,
        packages=wheelhouse.packages,
        manifest=wheelhouse.manifest,
        manifest_digest=wheelhouse.manifest_digest,
        total_bytes=wheelhouse.total_bytes,
    ).apply(
        lambda values: WheelhouseFiles(
            **{**values, "plugin_wheels": tuple(values["plugin_wheels"] or ()), "packages": tuple(values["packages"])}
        )
    )


def _model_files(model: ModelArtifact) -> pulumi.Output[ModelFiles]:
    return pulumi.Output.all(
        local_path=model.local_path,
        manifest=model.manifest,
        manifest_digest=model.manifest_digest,
        total_bytes=model.total_bytes,
    ).apply(lambda values: ModelFiles(**values))


def _debs_files(debs: DebPackages) -> pulumi.Output[DebFiles]:
    return pulumi.Output.all(debs_dir=debs.debs_dir, debs=debs.debs, packages=debs.packages).apply(
        lambda values: DebFiles(
            debs_dir=values["debs_dir"],
            debs={name: DebFile.model_validate(deb) for name, deb in values["debs"].items()},
            packages=tuple(values["packages"]),
        )
    )
