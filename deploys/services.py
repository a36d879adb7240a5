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
from pyinfra.facts.server import Command
from pyinfra.operations import files, server, systemd

from deploys import operations
from deploys.layout import (
    CONFIG_DIR,
    LEGACY_SECRET_FILES,
    PROGRAMS_DIR,
    RELEASE_DIR,
    RESTART_MARKERS,
    SECRETS_DIR,
    SERVICE_HOME,
    VERIFIED_RELEASE,
)
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


class FileStatus(FactBase[dict]):
    """Inode, modification time, owner and mode of each path; None for a missing file. What a
    refresh records of secret files: any rewrite shows, and nothing derived from their content."""

    def command(self, paths: list[str]) -> str:
        quoted = " ".join(shlex.quote(path) for path in paths)
        return f'for f in {quoted}; do stat -c "%i %Y %U %a %n" "$f" 2>/dev/null || echo "- - - - $f"; done'

    def process(self, output: list[str]) -> dict:
        status = {}
        for line in output:
            inode, mtime, owner, mode, path = line.split(" ", 4)
            status[path] = None if inode == "-" else f"{inode} {mtime} {owner} {mode}"
        return status


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


@deploy("Release running")
def release_running(units: list[ServiceSpec], secrets: dict[str, str], started_after: dict[str, str] | None = None):
    """The host's units of one phase of a release (`deploys.rollout`), each running and ready;
    `started_after[unit]` names what that unit must have been started after (`service_running`)."""
    for spec in units:
        service_running(spec, secrets, (started_after or {}).get(spec.unit))


@deploy("Service running")
def service_running(spec: ServiceSpec, secrets: dict[str, str], started_after: str | None = None):
    """`secrets`: the content of each of `spec.secret_files`, by path. `started_after`: the
    invocations of the units this one needs (vLLM: every Ray unit's); when they differ from those
    it was last started after, it restarts, so it never keeps a connection to a Ray that restarted."""
    missing = [secret.path for secret in spec.secret_files if secret.path not in secrets]
    if missing:
        raise ValueError(f"{spec.unit}: no content given for {', '.join(missing)}")
    service_user(spec.user, spec.device_groups)
    files.directory(name="Create the stack's config directory", path=CONFIG_DIR, mode="755")
    files.directory(
        name="Create the secrets directory", path=SECRETS_DIR, user=spec.user, group=spec.user, mode="700"
    )
    for legacy in LEGACY_SECRET_FILES:
        files.file(name=f"Remove {legacy} (root's, before the service user)", path=legacy, present=False)
    files.directory(name="Create the restart markers' directory", path=RESTART_MARKERS, mode="700")
    marker = f"{RESTART_MARKERS}/{spec.unit}.restart"
    files.directory(name="Create the programs' directory", path=PROGRAMS_DIR, mode="755")
    programs = [PROBE_SOURCE] + ([PROBE_SOURCE.with_name(spec.program)] if spec.program else [])
    for program in programs:
        files.put(name=f"Install {program.name}", src=str(program), dest=f"{PROGRAMS_DIR}/{program.name}", mode="644")
    for secret in spec.secret_files:
        operations.secret_file(
            name=f"Write {secret.path}", path=secret.path, content=secrets[secret.path],
            owner=spec.user, mode=secret.mode, restart_marker=marker,
        )  # fmt: skip
    unit = files.put(name=f"Write {spec.unit_path}", src=StringIO(spec.unit_text), dest=spec.unit_path, mode="644")
    systemd.daemon_reload(name="Reload systemd units", _if=unit.did_change)
    server.shell(name=f"Mark {spec.unit} for a restart: its unit changed", commands=[f"touch {marker}"], _if=unit.did_change)
    # Running but not answering (e.g. vLLM after a pipeline stage's host died): systemd sees no
    # failure to restart on, so restart it here.
    if host.get_fact(UnitActive, unit=spec.unit) and not host.get_fact(ProbeAnswers, spec=spec):
        server.shell(name=f"Mark {spec.unit} for a restart: running but not ready", commands=[f"touch {marker}"])
    after_file = f"{RELEASE_DIR}/{spec.unit}.after"
    if started_after is not None:
        files.directory(name="Create the release record's directory", path=RELEASE_DIR, mode="700")
        server.shell(
            name=f"Mark {spec.unit} for a restart if what it runs on restarted",
            commands=[f'[ "$(cat {after_file} 2>/dev/null)" = {shlex.quote(started_after)} ] || touch {marker}'],
        )
    # `restart` also starts a stopped unit, so a new service starts once, not twice. A unit that hit
    # its start limit refuses any start until its failed state is reset.
    server.shell(
        name=f"Restart {spec.unit} if a file it reads changed",
        commands=[f"systemctl reset-failed {shlex.quote(spec.unit)} 2>/dev/null; "
                  f"if [ -e {marker} ]; then rm -f {marker} && systemctl restart {shlex.quote(spec.unit)}; fi"],
    )  # fmt: skip
    systemd.service(name=f"Start and enable {spec.unit}", service=spec.unit, running=True, enabled=True)
    server.shell(name=f"Wait until {spec.unit} is ready", commands=[spec.probe_command(spec.ready_timeout)])
    if started_after is not None:
        server.shell(
            name=f"Record what {spec.unit} started after",
            commands=[f"echo {shlex.quote(started_after)} > {after_file}"],
        )


VERIFY_INTERVAL_S = 2


@deploy("Endpoint verified")
def endpoint_verified(spec: ServiceSpec, probes: int):
    """The endpoint answers `probes` times in a row, `VERIFY_INTERVAL_S` apart: a service that
    answers once and then falls over (a stage that dies on its first request) is not verified."""
    check = spec.probe_command(timeout=spec.ready_timeout)
    server.shell(
        name=f"Check {spec.unit} answers {probes} times in a row",
        commands=[f"for i in $(seq {probes}); do ({check}) || exit 1; sleep {VERIFY_INTERVAL_S}; done"],
    )


@deploy("Release verified")
def release_verified(units: list[ServiceSpec]):
    """Keeps a copy of the host's units and secret files, with each unit's probe, as the release to
    return to (`VERIFIED_RELEASE`, root's, 0700): what `release_restored` puts back."""
    new = f"{VERIFIED_RELEASE}.new"
    # `cp -a --parents` looks the parent directories up again relative to the working directory
    # (coreutils 9.1) to copy their attributes, so it must run from /.
    commands = [f"cd / && umask 077 && rm -rf {new} && mkdir -p {new}"]
    for spec in units:
        paths = spec.managed_paths()
        commands += [
            f"cp -a --parents {' '.join(shlex.quote(path) for path in paths)} {new}/",
            f"printf '%s\\n' {shlex.quote(spec.probe_command(spec.ready_timeout))} > {new}/{spec.unit}.probe",
            f"printf '%s\\n' {' '.join(shlex.quote(path) for path in paths)} > {new}/{spec.unit}.paths",
            f"echo {spec.unit} >> {new}/UNITS",
        ]
    commands.append(f"rm -rf {VERIFIED_RELEASE} && mv {new} {VERIFIED_RELEASE}")
    files.directory(name="Create the release record's directory", path=RELEASE_DIR, mode="700")
    server.shell(name="Record the verified release", commands=[" && ".join(commands)])


@deploy("Release restored")
def release_restored(units: list[ServiceSpec]):
    """Puts the host's units back as the last verified release had them and waits until each is
    ready again; a unit that release did not have is stopped and removed (nothing orphaned)."""
    for spec in units:
        unit, saved = shlex.quote(spec.unit), f"{VERIFIED_RELEASE}/{spec.unit}"
        restore = (
            f"if [ -f {VERIFIED_RELEASE}/UNITS ] && grep -qx {unit} {VERIFIED_RELEASE}/UNITS; then "
            f"while read -r path; do cp -a {VERIFIED_RELEASE}\"$path\" \"$path\"; done < {saved}.paths && "
            f"systemctl daemon-reload && {{ systemctl reset-failed {unit} 2>/dev/null; systemctl restart {unit}; }} "
            f"&& sh {saved}.probe; "
            f"else systemctl disable --now {unit} 2>/dev/null; "
            f"rm -f {' '.join(shlex.quote(path) for path in spec.managed_paths())} && systemctl daemon-reload; fi"
        )
        server.shell(name=f"Put {spec.unit} back as the verified release had it", commands=[restore])


@deploy("Unit handed over")
def unit_handed_over(spec: ServiceSpec, purge_cache: bool = False):
    """Retires a unit recorded as a resource of its own (stacks before the serving release): when a
    verified release has it, the release owns it now and it stays; else it is removed."""
    owned = f"grep -qx {shlex.quote(spec.unit)} {VERIFIED_RELEASE}/UNITS 2>/dev/null"
    if host.get_fact(Command, command=f"{owned} && echo owned || echo free") == "owned":
        return
    service_removed(spec, purge_cache)


@deploy("Release removed")
def release_removed(units: list[ServiceSpec], purge_cache: bool = False):
    """Every unit of the release on the host, and its record."""
    for spec in reversed(units):
        service_removed(spec, purge_cache)
    files.directory(name=f"Remove {RELEASE_DIR}", path=RELEASE_DIR, present=False)


def service_user(user: str, device_groups: tuple[str, ...]) -> None:
    """The unprivileged system user the services run as (no login, no home of its own but the
    state directory); on GPU hosts it joins the groups that own the device nodes the host has."""
    server.group(name=f"Create the group {user}", group=user, system=True)
    server.user(
        name=f"Create the system user {user}", user=user, group=user, system=True, home=SERVICE_HOME,
        shell="/usr/sbin/nologin", create_home=False, ensure_home=False,
    )  # fmt: skip
    for group in device_groups:
        server.shell(
            name=f"Add {user} to {group} where the host has it",
            commands=[
                f"! getent group {group} >/dev/null || id -nG {user} | grep -qw {group} || usermod -aG {group} {user}"
            ],
        )


@deploy("Service removed")
def service_removed(spec: ServiceSpec, purge_cache: bool = False):
    systemd.service(name=f"Stop and disable {spec.unit}", service=spec.unit, running=False, enabled=False)
    for path in spec.managed_paths():
        files.file(name=f"Remove {path}", path=path, present=False)
    for path in spec.cleanup_paths:
        files.directory(name=f"Remove {path}", path=path, present=False)
    systemd.daemon_reload(name="Reload systemd units")


class UnitInvocation(FactBase[str | None]):
    """systemd's id of the unit's current run: a new one at every (re)start."""

    def command(self, unit: str) -> str:
        return f"systemctl show -p InvocationID --value {shlex.quote(unit)} 2>/dev/null || true"

    def process(self, output: list[str]) -> str | None:
        return (output[-1].strip() if output else "") or None


def service_state(host: Host, spec: ServiceSpec) -> dict:
    digests = host.get_fact(FileDigests, paths=[spec.unit_path])
    secrets = host.get_fact(FileStatus, paths=[secret.path for secret in spec.secret_files])
    return {
        "active": host.get_fact(UnitActive, unit=spec.unit),
        "files": files_digest({**digests, **secrets}),
        "ready": host.get_fact(ProbeAnswers, spec=spec),
        "invocation": host.get_fact(UnitInvocation, unit=spec.unit),
    }


def release_state(host: Host, units: list[ServiceSpec], started_after: dict[str, str] | None = None) -> dict:
    """{unit: its `service_state`} for the host's units of a release (`started_after` is the
    deploy's argument, not read here)."""
    return {spec.unit: service_state(host, spec) for spec in units}
