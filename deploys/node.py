"""The steps a node goes through, as pyinfra deploys. Each step is applied and tracked on its own
(one Pulumi resource per node and step); the stack's table of steps says their order."""

from __future__ import annotations

from pathlib import PurePosixPath

from pyinfra.api import deploy
from pyinfra.operations import files

from deploys import operations
from deploys.layout import LEGACY_VENV, VENVS_ROOT
from deploys.runner import PUSH_TIMEOUT_S
from deploys.specs import (
    ModelWeightsSpec,
    NvidiaSpec,
    PlatformSpec,
    PythonEnvSpec,
    PythonRuntimeSpec,
    RuntimeEnvSpec,
    SystemPackagesSpec,
)


@deploy("OS preflight")
def os_preflight(spec: PlatformSpec):
    operations.os_platform(name="Check that the node runs a supported OS release and arch", spec=spec)
    if spec.owner is not None:
        operations.host_owned(name=f"Claim the host for the stack {spec.owner}", owner=spec.owner)


@deploy("Retire OS preflight")
def retire_os_preflight(spec: PlatformSpec, purge_cache: bool):
    """The host is free for another stack once this one is gone (the step is a node's first, so
    its resource is deleted last)."""
    if spec.owner is not None:
        operations.host_released(name=f"Release the host from the stack {spec.owner}", owner=spec.owner)


@deploy("NVIDIA preflight")
def nvidia_preflight(spec: NvidiaSpec):
    operations.nvidia_driver(
        name="Check that the NVIDIA driver runs the pinned torch's CUDA",
        min_driver=spec.min_driver,
        cuda=spec.cuda,
        install=spec.install,
    )


@deploy("System packages")
def system_packages(spec: SystemPackagesSpec):
    if spec.debs_dir is None:
        operations.debs_from_sources(
            name="Install missing system packages from the node's apt sources", packages=spec.packages, proxy=spec.proxy
        )
    else:
        operations.debs_installed(name="Install missing system packages from the controller's .debs", spec=spec)


@deploy("Python runtime")
def python_runtime(spec: PythonRuntimeSpec):
    operations.python_installed(name=f"Install the stack's Python {spec.version} at {spec.tree.destination}", spec=spec)


@deploy("Python environment")
def python_env(spec: PythonEnvSpec):
    operations.tree_synced(name="Push the wheelhouse", tree=spec.wheelhouse, _timeout=PUSH_TIMEOUT_S)
    operations.venv_installed(name=f"Install the locked package set into {spec.venv}", spec=spec)
    operations.venvs_retained(name="Remove venvs beyond the retention", current=spec.venv, keep_previous=spec.keep_previous)


@deploy("Model weights")
def model_weights(spec: ModelWeightsSpec):
    operations.tree_synced(
        name="Push the model weights and verify their checksums", tree=spec.tree, _timeout=PUSH_TIMEOUT_S
    )
    operations.readable_by_all(name="Let the service user read the weights", path=spec.tree.destination)
    destination = PurePosixPath(spec.tree.destination)
    operations.models_retained(
        name="Remove models beyond the retention",
        root=str(destination.parent),
        current=destination.name,
        keep_previous=spec.keep_previous,
    )


@deploy("Runtime environment")
def runtime_env(spec: RuntimeEnvSpec):
    operations.runtime_env_file(name=f"Write {spec.path}", spec=spec)


@deploy("Retire Python runtime")
def retire_python_runtime(spec: PythonRuntimeSpec, purge_cache: bool):
    """The interpreter is kept like a cache (pushing it again costs a push): only a purge removes it."""
    if purge_cache:
        files.directory(name=f"Remove {spec.tree.destination}", path=spec.tree.destination, present=False)


@deploy("Retire Python environment")
def retire_python_env(spec: PythonEnvSpec, purge_cache: bool):
    """Every version's venv goes: no unit runs any of them once the stack is gone."""
    for venv in (VENVS_ROOT, LEGACY_VENV):
        files.directory(name=f"Remove {venv}", path=venv, present=False)
    if purge_cache:
        files.directory(name="Remove the wheelhouse", path=spec.wheelhouse.destination, present=False)


@deploy("Retire model weights")
def retire_model_weights(spec: ModelWeightsSpec, purge_cache: bool):
    if purge_cache:
        files.directory(name="Remove the model weights", path=spec.tree.destination, present=False)


@deploy("Retire runtime environment")
def retire_runtime_env(spec: RuntimeEnvSpec, purge_cache: bool):
    files.file(name=f"Remove {spec.path}", path=spec.path, present=False)
