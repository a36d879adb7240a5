"""From the controller's artifacts and the stack config to each step's desired state on a node.

Used by the `Node` component (inside `Output.apply`, on the artifact resources' outputs) and by
the pyinfra CLI inventory (on the plain values), so both provision a node identically.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

from components.config import HostConfig, NetworkConfig, SoftwarePins, StackConfig
from components.debs import DebFiles
from components.model_source import ModelFiles
from components.wheels import WheelhouseFiles
from deploys.layout import MODELS_ROOT, WHEELHOUSE_ROOT
from deploys.specs import (
    ModelWeightsSpec,
    NodePlan,
    NvidiaDriverInstall,
    NvidiaSpec,
    PythonEnvSpec,
    PythonRuntimeSpec,
    RuntimeEnvSpec,
    SystemPackagesSpec,
    TreeSpec,
)
from nodes.flavors import get_flavor

SYSTEM_PACKAGES = ("python3", "python3-venv", "libnuma1")
"""What every node needs from Debian: the interpreter, venv support, and libnuma for vLLM's CPU
backend (torch loads it on GPU hosts too)."""


def system_packages_spec(debs: DebFiles) -> SystemPackagesSpec:
    return SystemPackagesSpec(packages=debs.packages, debs_dir=debs.debs_dir, debs=debs.debs)


def python_runtime_spec(software: SoftwarePins) -> PythonRuntimeSpec:
    return PythonRuntimeSpec(version=software.python)


def python_env_spec(wheelhouse: WheelhouseFiles) -> PythonEnvSpec:
    tree = TreeSpec(
        source=wheelhouse.path,
        destination=f"{WHEELHOUSE_ROOT}/{wheelhouse.key}",
        manifest=wheelhouse.manifest,
        verify_content=False,
    )
    return PythonEnvSpec(
        wheelhouse=tree,
        lock_key=wheelhouse.key,
        lock_file=wheelhouse.lock_file,
        plugin_wheels=wheelhouse.plugin_wheels,
        packages=wheelhouse.packages,
    )


def model_weights_spec(model: ModelFiles, served_name: str, models_root: str = MODELS_ROOT, keep_previous: int = 1) -> ModelWeightsSpec:
    tree = TreeSpec(
        source=model.local_path,
        destination=str(PurePosixPath(models_root) / served_name),
        manifest=model.manifest,
        verify_content=True,
    )
    return ModelWeightsSpec(tree=tree, keep_previous=keep_previous)


def runtime_env_spec(host: HostConfig, network: NetworkConfig, overrides: dict[str, str] | None = None) -> RuntimeEnvSpec:
    return RuntimeEnvSpec(
        address=str(host.address),
        interface=network.interface,
        nccl_ib_disable=network.nccl_ib_disable,
        overrides=overrides or {},
    )


def nvidia_spec(host: HostConfig, install: NvidiaDriverInstall | None = None) -> NvidiaSpec | None:
    """The preflight for `nvidia` hosts: the driver floor of the flavor's pinned torch CUDA build
    (`nodes/nvidia/cuda.json`); None for CPU hosts."""
    if host.accelerator != "nvidia":
        return None
    cuda = json.loads(get_flavor("nvidia").cuda_manifest.read_text())
    return NvidiaSpec(min_driver=cuda["min_driver"], cuda=cuda["cuda"], install=install)


def node_plan(
    host: HostConfig,
    software: SoftwarePins,
    network: NetworkConfig,
    debs: DebFiles,
    wheelhouse: WheelhouseFiles,
    model: ModelFiles,
    served_name: str,
    models_root: str = MODELS_ROOT,
    keep_previous: int = 1,
    env_overrides: dict[str, str] | None = None,
    driver_install: NvidiaDriverInstall | None = None,
) -> NodePlan:
    return NodePlan(
        nvidia=nvidia_spec(host, driver_install),
        system_packages=system_packages_spec(debs),
        python_runtime=python_runtime_spec(software),
        python_env=python_env_spec(wheelhouse),
        model_weights=model_weights_spec(model, served_name, models_root, keep_previous),
        runtime_env=runtime_env_spec(host, network, env_overrides),
    )


def driver_install(config: StackConfig) -> NvidiaDriverInstall | None:
    """The configured driver install with its signing key's text, so a new key diffs."""
    driver = config.nvidia_driver_install
    if driver is None:
        return None
    return NvidiaDriverInstall(
        url=driver.url, suite=driver.suite, signing_key=driver.signing_key_file.read_text(), packages=tuple(driver.packages)
    )
