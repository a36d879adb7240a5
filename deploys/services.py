"""The stack's long-running services (Ray head, Ray workers, vLLM) as systemd units on nodes.

A unit is applied with its files (environment, secrets, the readiness probe), restarted only
when one of them changed, and counts as applied once its probe says it is ready. Observing it
(refresh) reads whether it runs, whether its files are still what was written, and whether it
answers its probe right now.
"""

from __future__ import annotations

import hashlib
import shlex
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.api import FactBase, Host, deploy
from pyinfra.operations import files, server, systemd
from pyinfra.operations.util import any_changed

from deploys.layout import CONFIG_DIR, PROBE_PATH
from deploys.specs import ServiceSpec

PROBE_SOURCE = Path(__file__).with_name("probes.py")


def files_digest(sha256_by_path: dict[str, str | None]) -> str:
    lines = "".join(f"{path} {sha256_by_path[path]}\n" for path in sorted(sha256_by_path))
    return hashlib.sha256(lines.encode()).hexdigest()


class FileDigests(FactBase[dict]):
    """sha256 of each path; None for a missing file."""

    def command(self, paths: list[str]) -> str:
        quoted = " ".join(shlex.quote(path) for path in paths)
        return f"for f in {quoted}; do if [ -f \"$f\" ]; then sha256sum \"$f\"; else echo \"- $f\"; fi; done"

    def process(self, output: list[str]) -> dict:
        digests = {}
        for line in output:
            digest, _, path = line.partition(" ")
            digests[path.lstrip(" *")] = None if digest == "-" else digest
        return digests


class UnitActive(FactBase[bool]):
    def command(self, unit: str) -> str:
        return f"systemctl is-active {shlex.quote(unit)} || true"

    def process(self, output: list[str]) -> bool:
        return bool(output) and output[-1].strip() == "active"


class ProbeAnswers(FactBase[bool]):
    """Whether the service answers its readiness probe right now (no waiting)."""

    def command(self, spec: ServiceSpec) -> str:
        return f"({spec.probe_command(timeout=0)}) >/dev/null 2>&1 && echo ready || echo not-ready"

    def process(self, output: list[str]) -> bool:
        return bool(output) and output[-1].strip() == "ready"


@deploy("Service running")
def service_running(spec: ServiceSpec, secrets: dict[str, str]):
    """`secrets`: the content of each of `spec.secret_files`, by path."""
    missing = [secret.path for secret in spec.secret_files if secret.path not in secrets]
    if missing:
        raise ValueError(f"{spec.unit}: no content given for {', '.join(missing)}")
    files.directory(name="Create the stack's config directory", path=CONFIG_DIR, mode="755")
    files.put(name="Install the readiness probe", src=str(PROBE_SOURCE), dest=PROBE_PATH, mode="644")
    written = [
        files.put(name=f"Write {secret.path}", src=StringIO(secrets[secret.path]), dest=secret.path, mode=secret.mode)
        for secret in spec.secret_files
    ]
    written.append(files.put(name=f"Write {spec.unit_path}", src=StringIO(spec.unit_text), dest=spec.unit_path, mode="644"))
    files_changed = any_changed(*written)
    systemd.daemon_reload(name="Reload systemd units", _if=files_changed)
    systemd.service(name=f"Start and enable {spec.unit}", service=spec.unit, running=True, enabled=True)
    systemd.service(
        name=f"Restart {spec.unit} for its changed files", service=spec.unit, restarted=True, _if=files_changed
    )
    # Running but not answering (e.g. vLLM after a pipeline stage's host died): systemd sees no
    # failure to restart on, so restart it here.
    if host.get_fact(UnitActive, unit=spec.unit) and not host.get_fact(ProbeAnswers, spec=spec):
        systemd.service(
            name=f"Restart {spec.unit}: running but not ready",
            service=spec.unit,
            restarted=True,
            _if=lambda: not files_changed(),
        )
    server.shell(name=f"Wait until {spec.unit} is ready", commands=[spec.probe_command(spec.ready_timeout)])


@deploy("Service removed")
def service_removed(spec: ServiceSpec, purge_cache: bool = False):
    systemd.service(name=f"Stop and disable {spec.unit}", service=spec.unit, running=False, enabled=False)
    for path in spec.managed_paths():
        files.file(name=f"Remove {path}", path=path, present=False)
    for path in spec.cleanup_paths:
        files.directory(name=f"Remove {path}", path=path, present=False)
    systemd.daemon_reload(name="Reload systemd units")


def service_state(host: Host, spec: ServiceSpec) -> dict:
    digests = host.get_fact(FileDigests, paths=spec.managed_paths())
    return {
        "active": host.get_fact(UnitActive, unit=spec.unit),
        "files": files_digest(digests),
        "ready": host.get_fact(ProbeAnswers, spec=spec),
    }
