"""The one ordered table of node steps: what each step's desired state is built from, which of the
controller's artifacts it needs, and which steps it waits for.

The Pulumi `Node` component, the pyinfra CLI entry (`pyinfra_deploy.py`) and the tests all iterate
`NODE_STEPS`, so a node is provisioned the same way whichever drives it. The Pulumi side hands a
step its artifacts as they become known (only the ones it `needs`, so a step whose inputs are
known at preview diffs at preview); the CLI has them all at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from artifacts import manifest as manifests
from artifacts.debs import DebFiles
from artifacts.packages.flavors import get_flavor
from artifacts.python_build import PythonBuild
from artifacts.weights import ModelFiles, source_stamp
from artifacts.wheels import WheelhouseFiles, env_version
from deploys.layout import MODELS_ROOT, WHEELHOUSE_ROOT, venv_path
from deploys.specs import (
    FirewallSpec,
    ModelWeightsSpec,
    NvidiaDriverInstall,
    NvidiaSpec,
    PackageIndex,
    PlatformSpec,
    PythonEnvSpec,
    PythonRuntimeSpec,
    RuntimeEnvSpec,
    Spec,
    SystemPackagesSpec,
    TreeSpec,
)
from stack.config import HostConfig, ModelConfig, NetworkConfig, StackConfig
from stack.firewall import EPHEMERAL_PORTS, FirewallPolicy, firewall_policy, ruleset

SYSTEM_PACKAGES = ("libnuma1", "nftables")
"""What every node needs from its distribution: libnuma for vLLM's CPU backend (torch loads it on
GPU hosts too), and nft for the host firewall. The interpreter is the stack's own (`python-runtime`)."""


def pushed_release(host: HostConfig) -> str | None:
    """The release whose .debs the controller pushes to `host`; None when it reaches its own sources."""
    return None if host.route_out else host.os


def pushed_releases(hosts: list[HostConfig]) -> list[str]:
    """The releases the controller fetches .debs for, once each: none when every host has a route
    out, and then the controller never calls apt."""
    return sorted({release for host in hosts if (release := pushed_release(host)) is not None})


@dataclass(frozen=True)
class NodeInputs:
    """Everything one node's steps are built from. The artifacts (`debs`, `python`, `wheelhouse`,
    `model`) are None until known; a step reads only those it `needs`. `debs` stays None for a host
    with a route out."""

    host: HostConfig
    network: NetworkConfig
    model_folder: str
    """The weights' folder under `models_root` (`model_folder`): one per revision."""
    owner: str | None = None
    """`<project>/<stack>` claiming the host (`deploys.layout.OWNER_FILE`); None: no claim."""
    models_root: str = MODELS_ROOT
    keep_previous: int = 1
    keep_venvs: int = 1
    env_overrides: dict[str, str] = field(default_factory=dict)
    driver_install: NvidiaDriverInstall | None = None
    firewall: FirewallPolicy | None = None
    """The cluster's port rules and sources; None: no host firewall (`security.firewall: false`)."""
    package_index: PackageIndex | None = None
    """Where a node with a route out installs wheels from; None: it has none, wheels are pushed."""
    debs: DebFiles | None = None
    python: PythonBuild | None = None
    wheelhouse: WheelhouseFiles | None = None
    model: ModelFiles | None = None

    @classmethod
    def from_config(cls, config: StackConfig, host: HostConfig, owner: str | None = None, **artifacts) -> NodeInputs:
        """A host of the stack as `__main__.py` and the pyinfra CLI configure it."""
        return cls(
            host=host,
            network=config.network,
            owner=owner,
            model_folder=model_folder(config.model),
            keep_previous=config.model.keep_previous,
            keep_venvs=config.packages.keep_previous,
            env_overrides=config.network.env,
            driver_install=driver_install(config),
            firewall=firewall_policy(config),
            package_index=package_index(config, host),
            **artifacts,
        )

    @property
    def venv(self) -> str:
        return stack_venv(self.host.accelerator)

    def model_path(self) -> str:
        return str(PurePosixPath(self.models_root) / self.model_folder)


def platform_spec(inputs: NodeInputs) -> PlatformSpec:
    """The OS preflight against `deploys.platforms`' table and the host's declared `os`."""
    return PlatformSpec(declared=inputs.host.os, owner=inputs.owner)


def nvidia_spec(inputs: NodeInputs) -> NvidiaSpec:
    """The preflight for `nvidia` hosts: the driver floor of the flavor's pinned torch CUDA build
    (`artifacts/packages/nvidia/cuda.json`)."""
    cuda = json.loads(get_flavor("nvidia").cuda_manifest.read_text())
    return NvidiaSpec(min_driver=cuda["min_driver"], cuda=cuda["cuda"], install=inputs.driver_install)


def system_packages_spec(inputs: NodeInputs) -> SystemPackagesSpec:
    """The .debs of the host's release when it has no route out; else the packages by name, for the
    host to install from its own sources."""
    if pushed_release(inputs.host) is None:
        proxy = inputs.package_index.proxy if inputs.package_index is not None else None
        return SystemPackagesSpec(packages=SYSTEM_PACKAGES, proxy=proxy)
    debs = inputs.debs
    return SystemPackagesSpec(packages=debs.packages, release=debs.release, debs_dir=debs.debs_dir, debs=debs.debs)


def firewall_spec(inputs: NodeInputs) -> FirewallSpec:
    """The node's nftables rules for the stack's ports (`stack.firewall`)."""
    return FirewallSpec(rules=ruleset(inputs.firewall, inputs.host), ephemeral_ports=EPHEMERAL_PORTS)


def python_runtime_spec(inputs: NodeInputs) -> PythonRuntimeSpec:
    """The stack's interpreter (`artifacts.python_build`), built for the Python every lock and
    wheelhouse targets, pushed to the prefix it was built for."""
    python = inputs.python
    tree = TreeSpec(source=python.path, destination=python.prefix, manifest=python.manifest, verify_content=True)
    return PythonRuntimeSpec(version=python.version, glibc_floor=python.glibc_floor, tree=tree)


def python_env_spec(inputs: NodeInputs) -> PythonEnvSpec:
    """Pushes the whole wheelhouse to a node without a route out; a node with one gets only the
    lock, the installer and our plugin wheels (on no index) and fetches the rest itself, hash-checked
    by the lock."""
    wheelhouse = inputs.wheelhouse
    manifest = wheelhouse.manifest
    if inputs.package_index is not None:
        pushed = {wheelhouse.lock_file, wheelhouse.installer, *wheelhouse.plugin_wheels}
        manifest = manifests.render({name: digest for name, digest in manifests.parse(manifest).items() if name in pushed})
    tree = TreeSpec(
        source=wheelhouse.path,
        destination=f"{WHEELHOUSE_ROOT}/{wheelhouse.key}",
        manifest=manifest,
        verify_content=False,
    )
    return PythonEnvSpec(
        wheelhouse=tree,
        index=inputs.package_index,
        lock_key=wheelhouse.key,
        lock_file=wheelhouse.lock_file,
        installer=wheelhouse.installer,
        plugin_wheels=wheelhouse.plugin_wheels,
        packages=wheelhouse.packages,
        venv=inputs.venv,
        keep_previous=inputs.keep_venvs,
    )


def model_weights_spec(inputs: NodeInputs) -> ModelWeightsSpec:
    tree = TreeSpec(
        source=inputs.model.local_path,
        destination=inputs.model_path(),
        manifest=inputs.model.manifest,
        verify_content=True,
    )
    return ModelWeightsSpec(tree=tree, keep_previous=inputs.keep_previous)


def runtime_env_spec(inputs: NodeInputs) -> RuntimeEnvSpec:
    return RuntimeEnvSpec(
        address=str(inputs.host.address),
        interface=inputs.network.interface,
        nccl_ib_disable=inputs.network.nccl_ib_disable,
        overrides=inputs.env_overrides,
    )


@dataclass(frozen=True)
class StepDefinition:
    name: str
    """Also the step's name in `deploys.steps.STEPS` (how it is applied, observed, retired)."""
    build: Callable[[NodeInputs], Spec]
    """The step's desired state."""
    needs: tuple[str, ...] = ()
    """The artifacts of `NodeInputs` the builder reads."""
    after: tuple[str, ...] | None = None
    """Steps it waits for; None: the step before it in the table (that applies to the host)."""
    accelerator: str | None = None
    """Only on hosts with this accelerator; None: on every host."""
    when: Callable[[NodeInputs], bool] | None = None
    """Only when this holds for the node's inputs (a feature the config turns off); None: always."""

    def applies_to(self, inputs: NodeInputs) -> bool:
        return (self.accelerator is None or inputs.host.accelerator == self.accelerator) and (
            self.when is None or self.when(inputs)
        )


NODE_STEPS: tuple[StepDefinition, ...] = (
    StepDefinition("os-preflight", platform_spec),
    StepDefinition("nvidia-preflight", nvidia_spec, accelerator="nvidia"),
    StepDefinition("system-packages", system_packages_spec, needs=("debs",)),
    # Before any service opens a port; nft comes with the system packages.
    StepDefinition("firewall", firewall_spec, when=lambda inputs: inputs.firewall is not None),
    StepDefinition("python-runtime", python_runtime_spec, needs=("python",)),
    StepDefinition("python-env", python_env_spec, needs=("wheelhouse",)),
    # Weights need no venv: they stream while pip installs.
    StepDefinition("model-weights", model_weights_spec, needs=("model",), after=("python-runtime",)),
    StepDefinition("runtime-env", runtime_env_spec, after=("python-env", "model-weights")),
)
"""In order: a failed preflight stops the node before anything on it changed."""


def with_artifacts(inputs: NodeInputs, step: StepDefinition, values: tuple) -> NodeInputs:
    """`inputs` with the step's needed artifacts set to `values` (in `step.needs` order)."""
    return dataclasses.replace(inputs, **dict(zip(step.needs, values, strict=True)))


def steps_for(inputs: NodeInputs) -> tuple[StepDefinition, ...]:
    """The steps that apply to the node, in table order."""
    return tuple(step for step in NODE_STEPS if step.applies_to(inputs))


def node_specs(inputs: NodeInputs) -> dict[str, Spec]:
    """Each step of the host and its spec, in table order (every artifact known)."""
    return {step.name: step.build(inputs) for step in steps_for(inputs)}


def model_folder(model: ModelConfig) -> str:
    """The model's folder on every node: its served name and a digest of the source's identity
    (`source_stamp`: the pinned revision, or the local files' names, sizes and times), so a new
    revision lands beside the one serving, which keeps serving until the new one is verified; the
    name is known at preview."""
    stamp = source_stamp(str(model.path) if model.path else None, model.huggingface)
    return f"{model.served_name}-{hashlib.sha256(stamp.encode()).hexdigest()[:16]}"


def stack_venv(accelerator: str) -> str:
    """Where every node of the stack keeps its package set's venv: named by the flavor's lock and
    plugins, so it is known at preview and an upgrade installs beside the running one."""
    return venv_path(env_version(accelerator))


def package_index(config: StackConfig, host: HostConfig) -> PackageIndex | None:
    """The configured index for a host with a route out (`route_out`), else None (everything pushed)."""
    if not host.route_out:
        return None
    return PackageIndex(url=config.packages.index_url, proxy=config.packages.proxy)


def driver_install(config: StackConfig) -> NvidiaDriverInstall | None:
    """The configured driver install with its signing key's text, so a new key diffs."""
    driver = config.nvidia_driver_install
    if driver is None:
        return None
    return NvidiaDriverInstall(
        url=driver.url, suite=driver.suite, signing_key=driver.signing_key_file.read_text(), packages=tuple(driver.packages)
    )
