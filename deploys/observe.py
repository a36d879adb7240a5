"""What each step looks like on a node right now: the values `pulumi refresh` records and the
diff compares with what the step left behind when it last ran. Read-only (facts only).
"""

from __future__ import annotations

from pyinfra.api import Host
from pyinfra.facts.files import FileContents, Sha256File

from artifacts import manifest as manifests
from deploys.facts import (
    CpuCount,
    HostOwner,
    HostPlatform,
    InstalledDebs,
    Ipv4Addresses,
    MemoryBytes,
    PythonVersion,
    SyncedTree,
    VenvPackages,
)
from deploys.runtime_env import parse_env_file
from deploys.specs import (
    ModelWeightsSpec,
    NvidiaSpec,
    PlatformSpec,
    PythonEnvSpec,
    PythonRuntimeSpec,
    RuntimeEnvSpec,
    SystemPackagesSpec,
)


def host_facts(host: Host) -> dict:
    platform = host.get_fact(HostPlatform)
    release = platform["os"]
    return {
        "os": release["pretty_name"] or release["id"],
        "os_id": release["id"],
        "os_version": release["version_id"],
        "os_codename": release["codename"],
        "arch": platform["arch"],
        "glibc": platform["glibc"],
        "python": platform["python"],
        "cpus": host.get_fact(CpuCount),
        "memory_bytes": host.get_fact(MemoryBytes),
        "addresses": host.get_fact(Ipv4Addresses),
        "nvidia": platform["nvidia"],
    }


def os_platform(host: Host, spec: PlatformSpec) -> dict:
    platform = host.get_fact(HostPlatform)
    observed = {"os_id": platform["os"]["id"], "os_version": platform["os"]["version_id"], "arch": platform["arch"]}
    if spec.owner is not None:  # another stack claiming the host since is drift the next `up` reports
        observed["owner"] = host.get_fact(HostOwner)
    return observed


def nvidia_driver(host: Host, spec: NvidiaSpec) -> dict:
    smi = host.get_fact(HostPlatform)["nvidia"] or {}
    return {"driver": smi.get("driver"), "cuda": smi.get("cuda"), "gpus": smi.get("gpus") or []}


def system_packages(host: Host, spec: SystemPackagesSpec) -> dict:
    installed = host.get_fact(InstalledDebs)
    return {"missing": [package for package in spec.packages if package not in installed]}


def python_runtime(host: Host, spec: PythonRuntimeSpec) -> dict:
    """The interpreter's version and the digest of the tree the node holds (the same digest on every
    node: one build), checked file by file: an edited file reads as drift."""
    tree = host.get_fact(SyncedTree, path=spec.tree.destination, verify_content=True)
    return {
        "version": host.get_fact(PythonVersion, interpreter=spec.interpreter),
        "build": _manifest_digest(tree),
        "failed": tree["failed"],
        "glibc": host.get_fact(HostPlatform)["glibc"],
    }


def python_env(host: Host, spec: PythonEnvSpec) -> dict:
    venv = host.get_fact(VenvPackages, venv=spec.venv)
    if venv is None:
        return {"lock": None, "packages_digest": None}
    return {
        "lock": venv["record"]["lock"] if venv["record"] else None,
        "packages_digest": manifests.lines_digest(venv["freeze"]),
    }


def model_weights(host: Host, spec: ModelWeightsSpec) -> dict:
    tree = host.get_fact(SyncedTree, path=spec.tree.destination, verify_content=True)
    return {"manifest_digest": _manifest_digest(tree), "failed": tree["failed"]}


def _manifest_digest(tree: dict) -> str | None:
    """The digest of a `SyncedTree`'s manifest; None without one."""
    return manifests.manifest_digest(manifests.parse(tree["manifest"])) if tree["manifest"] is not None else None


def runtime_env(host: Host, spec: RuntimeEnvSpec) -> dict:
    lines = host.get_fact(FileContents, path=spec.path)
    return {"env": parse_env_file(lines) if lines is not None else None, "sha256": host.get_fact(Sha256File, path=spec.path)}
