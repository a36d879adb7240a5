"""Desired state of each provisioning step: plain, validated, serializable values.

The same objects are Pulumi inputs (as JSON, so `preview` diffs them), pyinfra host data for the
CLI, and the arguments of the deploys in `deploys.node`. Nothing here touches a host.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from functools import cached_property
from pathlib import PurePosixPath
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from artifacts import manifest as manifests
from artifacts.debs import DebFile, ReleaseName
from deploys.layout import (
    ENV_FILE,
    FIREWALL_RULES,
    FIREWALL_TABLE,
    FIREWALL_UNIT,
    LEGACY_VENV,
    MODELS_ROOT,
    PROBE_PATH,
    PROGRAMS_DIR,
    PYTHON_INTERPRETER,
    PYTHON_ROOT,
    SERVICE_HOME,
    UNIT_DIR,
    VENVS_ROOT,
)
from deploys.platforms import PLATFORM_KEYS, SUPPORTED_ARCHES, PlatformKey

PINNED_DEB = re.compile(r"^[a-z0-9][a-z0-9+.-]*=[A-Za-z0-9.+~:-]+$")
JOURNAL_LINES = 40
"""Of a unit that did not become ready, shown in the error."""
OWNER = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")
"""`<project>/<stack>`: the stack a host belongs to (`deploys.layout.OWNER_FILE`)."""
SERVED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
"""The name vLLM serves the model as (the config's `model.served_name`)."""
MODEL_DIRECTORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,191}$")
"""A model's folder name under the models root: the served name and its revision's digest."""
URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/%-]*)?$")
"""A plain http(s) URL: no credentials, query or anything a shell or a config line could read as more."""
VENV_PATH = re.compile(rf"^{re.escape(VENVS_ROOT)}/[a-z]+-[0-9a-f]{{16}}$")
"""One versioned venv (`deploys.layout.venv_path`): retention deletes its siblings, units run it."""
RECORDED_VENV = re.compile(rf"{VENV_PATH.pattern}|^{re.escape(LEGACY_VENV)}$")
"""A venv as state may hold it: versioned, or the one venv of stacks made before (refreshed, retired)."""
LOGIN_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
"""A user or group name as useradd accepts it (never an option)."""


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SystemPackagesSpec(Spec):
    """The system packages a node needs: pushed as .debs of its release from the controller, or
    (`debs` None) installed by name from the node's own package sources."""

    packages: tuple[str, ...] = Field(description="Debian/Ubuntu packages every node needs.")
    release: ReleaseName | None = Field(None, description="The release the .debs are for: the node must run it.")
    debs_dir: str | None = Field(None, description="Controller folder holding the .deb files of `debs`.")
    debs: dict[str, DebFile] | None = Field(
        None, description="The packages and their dependency closure, downloaded once; None: the node's sources."
    )
    proxy: str | None = Field(None, pattern=URL.pattern, description="apt's HTTP proxy, for the node's own sources.")

    @model_validator(mode="after")
    def _pushed_together(self) -> SystemPackagesSpec:
        if not (self.release is None) == (self.debs_dir is None) == (self.debs is None):
            raise ValueError("release, debs_dir and debs go together: all (pushed .debs) or none (node's sources)")
        return self


class TreeSpec(Spec):
    """A controller directory copied to the same content on a node, described by its manifest."""

    source: str
    destination: str
    manifest: str = Field(description="`sha256sum` lines of every file, as `artifacts.manifest.render` writes them.")
    verify_content: bool = Field(
        description="Hash every file on the node when checking (weights); else only check presence "
        "(wheels, whose hashes pip checks at install)."
    )

    @cached_property
    def entries(self) -> manifests.Manifest:
        return manifests.parse(self.manifest)

    @cached_property
    def digest(self) -> str:
        return manifests.manifest_digest(self.entries)


class PackageIndex(Spec):
    """Where a node with a route out installs the locked wheels from (hashes still pinned by the lock)."""

    url: str = Field(pattern=URL.pattern)
    proxy: str | None = Field(None, pattern=URL.pattern)


class PythonRuntimeSpec(Spec):
    """The stack's interpreter (`artifacts.python_build`): its tree pushed to its prefix, then checked
    to run as exactly `version`, on a node whose glibc is at least `glibc_floor`."""

    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    glibc_floor: str = Field(pattern=r"^\d+\.\d+$", description="The newest GLIBC_x.y symbol version the tree needs.")
    tree: TreeSpec

    @field_validator("tree")
    @classmethod
    def _at_a_python_prefix(cls, tree: TreeSpec) -> TreeSpec:
        """A purge deletes the destination: it must be one version folder under the interpreters' root."""
        if not re.fullmatch(rf"{re.escape(PYTHON_ROOT)}/\d+\.\d+\.\d+", tree.destination):
            raise ValueError(f"the interpreter goes to {PYTHON_ROOT}/<X.Y.Z>, not {tree.destination!r}")
        return tree

    @property
    def interpreter(self) -> str:
        return f"{self.tree.destination}/bin/python3"


class PythonEnvSpec(Spec):
    wheelhouse: TreeSpec
    """The pushed wheelhouse; with `index`, only the lock and our plugin wheels."""
    index: PackageIndex | None = Field(None, description="Install from this index instead of the pushed wheels.")
    lock_key: str = Field(description="Names the lock the wheelhouse was built from.")
    lock_file: str = Field(description="The lock, relative to the wheelhouse.")
    installer: str = Field(pattern=r"^[a-z]+/uv$", description="The uv binary that installs the lock, relative to the wheelhouse.")
    plugin_wheels: tuple[str, ...] = Field((), description="Our own wheels, relative to the wheelhouse; installed --no-deps.")
    packages: tuple[str, ...] = Field(description="Normalized names the venv holds: the lock's plus the plugins'.")
    venv: str = Field(pattern=RECORDED_VENV.pattern, description="This package set's own venv, beside the others.")
    keep_previous: int = Field(1, ge=0, description="Other venvs kept on the node, newest first, besides those a unit runs.")
    interpreter: str = Field(PYTHON_INTERPRETER, description="Makes the venv; a venv made by another is made anew.")


class ModelWeightsSpec(Spec):
    tree: TreeSpec
    keep_previous: int = Field(1, ge=0, description="Other model folders kept on the node, newest first.")

    @field_validator("tree")
    @classmethod
    def _one_folder_under_the_models_root(cls, tree: TreeSpec) -> TreeSpec:
        """Retention and purge delete around the destination: it must be one plain folder of the root."""
        destination = PurePosixPath(tree.destination)
        if str(destination.parent) != MODELS_ROOT or not MODEL_DIRECTORY.match(destination.name):
            raise ValueError(f"model weights go to {MODELS_ROOT}/<name>, not {tree.destination!r}")
        return tree


class RuntimeEnvSpec(Spec):
    address: str = Field(description="The node's cluster address; its interface carries GLOO/NCCL traffic.")
    interface: str | None = Field(None, description="Overrides the detected interface.")
    nccl_ib_disable: bool = True
    overrides: dict[str, str] = Field(default_factory=dict, description="Any variable, set last.")
    path: str = ENV_FILE


class FirewallSpec(Spec):
    """The node's host firewall: an nftables script that replaces the stack's own table, loaded now
    and at every boot by a oneshot unit."""

    rules: str = Field(description="The nftables script (`stack.firewall.ruleset`); it names only `table`.")
    ephemeral_ports: tuple[int, int] = Field(
        description="The port range the rules restrict to the cluster's members for vLLM's pipeline sockets, "
        "which bind port 0; the node's net.ipv4.ip_local_port_range must lie inside it."
    )
    table: str = Field(FIREWALL_TABLE, pattern=r"^[a-z_]+$")
    path: str = FIREWALL_RULES
    unit: str = Field(FIREWALL_UNIT, pattern=r"^[a-z0-9-]+\.service$")

    @property
    def unit_path(self) -> str:
        return f"{UNIT_DIR}/{self.unit}"

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.rules.encode()).hexdigest()


class NvidiaDriverInstall(Spec):
    """A pinned NVIDIA driver (and CUDA toolkit) from an apt repository the node can reach."""

    url: str = Field(description="Repository URL, e.g. a LAN mirror of NVIDIA's debian12/x86_64 CUDA repository.")
    suite: str = Field("/", description="`/` for NVIDIA's flat repositories.")
    signing_key: str = Field(description="The repository's ASCII-armored public key (its text, so a new key diffs).")
    packages: tuple[str, ...] = Field(min_length=1, description="Pinned `name=version`, e.g. cuda-drivers=580.65.06-1.")

    @field_validator("packages")
    @classmethod
    def _pinned(cls, packages: tuple[str, ...]) -> tuple[str, ...]:
        loose = [package for package in packages if not PINNED_DEB.match(package)]
        if loose:
            raise ValueError(f"pin every package as name=version: {', '.join(loose)}")
        return packages


class PlatformSpec(Spec):
    """The OS preflight: the releases and arches the node may run (`deploys.platforms`), and the one
    the inventory declares for it, if any. The table is part of the spec so a change re-checks nodes."""

    supported: tuple[PlatformKey, ...] = PLATFORM_KEYS
    arches: tuple[str, ...] = SUPPORTED_ARCHES
    declared: PlatformKey | None = None
    owner: str | None = Field(None, pattern=OWNER.pattern, description="The stack claiming the host; None: no claim.")


class NvidiaSpec(Spec):
    min_driver: str = Field(pattern=r"^\d+(\.\d+)*$", description="Oldest driver that runs the pinned torch's CUDA.")
    cuda: str = Field(description="CUDA version of the pinned torch build.")
    install: NvidiaDriverInstall | None = None


class SecretFile(Spec):
    """A file of secrets the unit reads. Only its path and mode are in the spec, which Pulumi shows
    in previews and keeps in plain state; its content arrives beside the spec as a secret input.
    It lives in the service user's 0700 secrets directory and belongs to that user."""

    path: str = Field(pattern=r"^/etc/ray-vllm-stack/(secrets/)?[a-z0-9_][a-z0-9_.-]*$")
    """In the secrets directory; directly under /etc/ray-vllm-stack only in state recorded before it."""
    mode: str = Field("600", pattern=r"^[0-7]{3,4}$")


class ServiceSpec(Spec):
    unit: str = Field(pattern=r"^[a-z0-9-]+\.service$")
    unit_text: str
    user: str = Field(pattern=LOGIN_NAME.pattern, description="The system user the unit runs as.")
    venv: str = Field(pattern=RECORDED_VENV.pattern, description="The venv the unit and its probe run.")
    device_groups: tuple[Annotated[str, Field(pattern=LOGIN_NAME.pattern)], ...] = Field(
        (), description="Groups owning GPU device nodes (e.g. video, render); the user joins those the host has."
    )
    program: str | None = Field(
        None, pattern=r"^[a-z_]+\.py$", description="A node-side program of `deploys/` the unit runs."
    )
    secret_files: tuple[SecretFile, ...] = ()
    probe: tuple[str, ...] = Field(description="Arguments of deploys/probes.py that say the unit is ready.")
    probe_environment: dict[str, str] = {}
    ready_timeout: int = Field(300, ge=1)
    cleanup_paths: tuple[str, ...] = Field((), description="Runtime directories removed with the unit.")

    @property
    def unit_path(self) -> str:
        return f"{UNIT_DIR}/{self.unit}"

    @property
    def program_path(self) -> str | None:
        return self.program and f"{PROGRAMS_DIR}/{self.program}"

    def managed_paths(self) -> list[str]:
        return [self.unit_path, *(secret.path for secret in self.secret_files)]

    def probe_command(self, timeout: int) -> str:
        """The probe runs as the service's user: a Ray driver started by root would leave root's
        directories in the user's Ray session, which its own processes then cannot write. On
        failure the unit's journal (root's to read) follows the probe's reason."""
        environment = " ".join(f"{key}={shlex.quote(value)}" for key, value in sorted(self.probe_environment.items()))
        arguments = " ".join(shlex.quote(argument) for argument in self.probe)
        unit = shlex.quote(self.unit)
        return (
            f"cd / && runuser -u {self.user} -- env HOME={SERVICE_HOME} {environment} {self.venv}/bin/python {PROBE_PATH} "
            f"{arguments} --unit {unit} --timeout {timeout} "
            f"|| {{ status=$?; echo 'last lines of {self.unit}:' >&2; "
            f"journalctl -u {unit} -n {JOURNAL_LINES} --no-pager -o cat >&2; exit $status; }}"
        )


RELEASE_ROLES = ("ray-head", "ray-worker", "vllm", "api-front")
"""The services a release switches, in the order they start: a Ray head before its workers (they
join it), the whole cluster before vLLM (it places its stages on it), vLLM before its front."""


class ReleaseUnit(Spec):
    """One service of the release on one host."""

    host: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")
    role: str = Field(pattern="^(" + "|".join(RELEASE_ROLES) + ")$")
    service: ServiceSpec


class ReleaseSpec(Spec):
    """The cluster's services as one release: switched phase by phase, then verified end to end;
    a failure anywhere puts every host back on the last verified release."""

    phases: tuple[tuple[ReleaseUnit, ...], ...] = Field(min_length=1)
    verify_probes: int = Field(3, ge=1, description="Successive answers of the endpoint that verify the release.")

    @property
    def units(self) -> tuple[ReleaseUnit, ...]:
        return tuple(unit for phase in self.phases for unit in phase)

    def units_on(self, host: str) -> list[ServiceSpec]:
        return [unit.service for unit in self.units if unit.host == host]

    @property
    def hosts(self) -> list[str]:
        return list(dict.fromkeys(unit.host for unit in self.units))
