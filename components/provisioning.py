"""Provisioning steps as Pulumi resources: one dynamic resource per node and step.

The provider is thin: `create`/`update` apply the step's pyinfra deploy to the one host through
`deploys.runner.run_deploy` and record what the host looks like afterwards (`applied`); `read`
(what `pulumi refresh` calls) observes the host again (`observed`); `diff` reports a change when
an input differs, or when the last observation differs from the one after the last apply, so
drift found by refresh is repaired by the next `up`, step by step. A second `up` with nothing
changed calls no provider method that touches a host.

Inputs carry a digest of the deploy code, so a change to an operation re-applies its steps (they
are idempotent: an unchanged host sees only noops).
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pydantic import ValidationError

from artifacts.paths import REPO_ROOT
from deploys.layout import LEGACY_VENV, PYTHON_ROOT
from deploys.runner import HostKeyPolicy, SshTarget, run_deploy
from deploys.specs import RELEASE_ROLES
from deploys.steps import STEPS

DEPLOYS_DIR = REPO_ROOT / "deploys"
INPUTS = ("step", "host", "spec", "secrets", "sudo_password", "code", "host_keys", "purge_cache")
OUTPUTS = ("observed", "applied", "changed", "pushed_bytes", "seconds")


def deploy_code_digest() -> str:
    """sha256 over the sources of `deploys/`: what every step's behaviour depends on."""
    digest = hashlib.sha256()
    for source in sorted(DEPLOYS_DIR.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()


class StepError(RuntimeError):
    """A step failed on its host; the message names the host and the step."""


def step_inputs(
    step: str,
    host: SshTarget | pulumi.Output[SshTarget],
    spec: Any,
    host_keys: HostKeyPolicy,
    purge_cache: bool = False,
    secrets: Any = None,
    sudo_password: Any = None,
) -> dict[str, Any]:
    """A step resource's inputs; `spec` is the step's spec as JSON (or an Output of it), plain in
    state so a preview shows which of its fields change. `secrets` ({path: content} of the spec's
    secret files, a secret Output) travels beside it and, with `sudo_password` (only for a host
    reached through sudo), is all that state keeps encrypted. `host` is an Output where its address
    comes later (a cloud host's); the caller then passes `sudo_password` only for a host using sudo."""
    known = isinstance(host, SshTarget)
    return {
        "step": step,
        "host": host.model_dump(mode="json") if known else host.apply(lambda target: target.model_dump(mode="json")),
        "spec": spec,
        "secrets": secrets,
        "sudo_password": sudo_password if not known or host.sudo else None,
        "code": deploy_code_digest(),
        "host_keys": {"known_hosts_file": host_keys.known_hosts_file, "strict": host_keys.strict},
        "purge_cache": purge_cache,
    }


def apply_step(props: dict[str, Any]) -> dict[str, Any]:
    """Runs the step on its host; returns the outputs to record (inputs + observations)."""
    step = STEPS[props["step"]]
    host = SshTarget.model_validate(props["host"])
    result = run_deploy(
        [host], step.apply, observe=step.observe, host_keys=HostKeyPolicy(**props["host_keys"]),
        log_name=f"{host.name}-{step.name}", secrets=props.get("secrets"), sudo_password=props.get("sudo_password"),
        **_spec_data(step, props),
    )[host.name]  # fmt: skip
    if result.error:
        raise StepError(f"{step.name} on {result.error}")
    return {
        **_inputs(props),
        "observed": result.facts,
        "applied": result.facts,
        "changed": result.changed,
        "pushed_bytes": result.pushed_bytes,
        "seconds": result.seconds,
    }


def recorded_in_current_shape(props: dict[str, Any]) -> dict[str, Any]:
    """A step's recorded properties in today's shape. State written before the stack's layers were
    separated held the stack's whole `HostConfig` as `host`, and a service's secret files inline in
    its `spec.files`; a refresh or a destroy of such a stack reads them as they are now."""
    props = dict(props)
    host = props.get("host") or {}
    if "ssh" in host:
        ssh = host["ssh"]
        props["host"] = {"name": host["name"], "address": host["address"], "user": ssh["user"], "port": ssh["port"],
                         "key_file": ssh["key_file"]}  # fmt: skip
    spec = props.get("spec")
    if isinstance(spec, dict) and "unit_text" in spec and "user" not in spec:
        # Services recorded before the service user ran as root, their probe sourcing the key file.
        spec = {**{k: v for k, v in spec.items() if k != "probe_env_files"}, "user": "root"}
        props["spec"] = spec
    if isinstance(spec, dict) and props.get("step") in (*RELEASE_ROLES, "python-env") and "venv" not in spec:
        # Recorded before versioned venvs, when every unit ran the one venv.
        spec = props["spec"] = {**spec, "venv": LEGACY_VENV}
    if props.get("step") == "python-runtime" and isinstance(spec, dict) and "tree" not in spec:
        # Recorded when nodes ran the OS's python3 and only its version was checked: read as the
        # stack's interpreter not pushed yet (a refresh finds it missing; the next `up` pushes it).
        destination = f"{PYTHON_ROOT}/{spec['version']}"
        tree = {"source": "", "destination": destination, "manifest": "", "verify_content": True}
        props["spec"] = {"version": spec["version"], "glibc_floor": "0.0", "tree": tree}
    if isinstance(spec, dict) and "files" in spec:
        files = spec["files"]
        props["spec"] = {**{k: v for k, v in spec.items() if k != "files"},
                         "secret_files": [{"path": f["path"], "mode": f["mode"]} for f in files]}  # fmt: skip
        props["secrets"] = {f["path"]: f["content"] for f in files}
    return props


def observe_step(props: dict[str, Any]) -> dict[str, Any]:
    """The host as it is now, for `pulumi refresh`: the stored outputs with a new `observed`."""
    props = recorded_in_current_shape(props)
    step = STEPS[props["step"]]
    host = SshTarget.model_validate(props["host"])
    result = run_deploy(
        [host], None, observe=step.observe, host_keys=HostKeyPolicy(**props["host_keys"]),
        log_name=f"{host.name}-{step.name}", sudo_password=props.get("sudo_password"), **_spec_data(step, props),
    )[host.name]  # fmt: skip
    if result.error:
        raise StepError(f"refreshing {step.name} on {result.error}")
    return {**props, "observed": result.facts}


LET_GO_VARIABLE = "RVS_LET_GO"
"""Hosts (comma-separated names) an operator lets go at `destroy` although they cannot be reached."""


def let_go(unreachable: dict[str, str], what: str) -> list[str]:
    """Warnings for the unreachable hosts the operator let go (`RVS_LET_GO`); any other raises, so
    its resource stays in state and the next `destroy` (or `up`) removes `what` once it is back:
    nothing is left running on a host the stack no longer knows of without someone saying so."""
    named = {name.strip() for name in os.environ.get(LET_GO_VARIABLE, "").split(",") if name.strip()}
    kept = sorted(set(unreachable) - named)
    if kept:
        raise StepError(
            f"cannot remove {what} from {', '.join(kept)}: {'; '.join(unreachable[name] for name in kept)}. "
            f"It stays in the stack: bring the host back and run `pulumi destroy` again, or let it go as it is "
            f"with `{LET_GO_VARIABLE}={','.join(kept)} pulumi destroy` (its services then start again at its "
            "next boot until removed by hand)"
        )
    return [f"{unreachable[name]}; let go as asked, left {what} on it as it is" for name in sorted(unreachable)]


def retire_step(props: dict[str, Any]) -> str | None:
    """Undoes the step on its host when its resource is deleted (`destroy`, or a node removed
    from the inventory). A host that cannot be reached fails the delete (`let_go`); returns the
    warning for one the operator let go."""
    props = recorded_in_current_shape(props)
    step = STEPS[props["step"]]
    if step.retire is None:
        return None
    host = SshTarget.model_validate(props["host"])
    result = run_deploy(
        [host], step.retire, host_keys=HostKeyPolicy(**props["host_keys"]), log_name=f"{host.name}-{step.name}",
        purge_cache=bool(props.get("purge_cache")), sudo_password=props.get("sudo_password"), **_spec_data(step, props),
    )[host.name]  # fmt: skip
    if result.error and result.reachable:
        raise StepError(f"removing {step.name} from {result.error}")
    return "; ".join(let_go({host.name: result.error}, step.name)) if result.error else None


def step_changes(olds: dict[str, Any], news: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(changed properties, properties whose change replaces the resource) between the stored
    outputs `olds` and the new inputs `news`."""
    changes = [key for key in INPUTS if olds.get(key) != news.get(key)]
    if STEPS[news["step"]].repairs_drift and olds.get("observed") != olds.get("applied"):
        changes.append("observed")
    old_host, new_host = olds.get("host") or {}, news.get("host") or {}
    moved = any(old_host.get(key) != new_host.get(key) for key in ("name", "address"))
    return changes, (["host"] if moved else [])


def check_inputs(news: dict[str, Any]) -> list[CheckFailure]:
    """Input errors, each on its property; values unknown at preview are checked at `up`."""
    failures = []
    if news.get("step") not in STEPS:
        return [CheckFailure("step", f"unknown step {news.get('step')!r}; known: {', '.join(STEPS)}")]
    step = STEPS[news["step"]]
    checks = [("host", SshTarget, news.get("host"))]
    if step.spec_type is not None:
        checks.append(("spec", step.spec_type, news.get("spec")))
    for key, model, value in checks:
        if _has_unknowns(value):
            continue
        try:
            model.model_validate(value)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            failures.append(CheckFailure(key, f"{where}: {first['msg']}" if where else first["msg"]))
    return failures


def _spec_data(step, props: dict[str, Any]) -> dict[str, Any]:
    return {} if step.spec_type is None else {"spec": step.spec_type.model_validate(props["spec"])}


def _inputs(props: dict[str, Any]) -> dict[str, Any]:
    return {key: props.get(key) for key in INPUTS}


def _has_unknowns(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_unknowns(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_unknowns(item) for item in value)
    return isinstance(value, Unknown) or value == rpc.UNKNOWN


class StepProvider(ResourceProvider):
    """Stateless: everything a call needs is in the resource's properties (the step's name among
    them), so the pickled provider stays the same across runs and code changes diff via `code`."""

    serialize_as_secret_always = False

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, check_inputs(news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changes, replaces = step_changes(olds, news)
        return DiffResult(changes=bool(changes), replaces=replaces, stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(f"{props['host']['name']}/{props['step']}", apply_step(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(apply_step(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, observe_step(props))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        warning = retire_step(props)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)


class NodeStep(pulumi.dynamic.Resource, module="provisioning", name="NodeStep"):
    """One step of one node (`<node>-<step>`); `observed` is what the host looked like last."""

    observed: pulumi.Output[dict]
    applied: pulumi.Output[dict]
    changed: pulumi.Output[bool]
    pushed_bytes: pulumi.Output[int]
    seconds: pulumi.Output[float]

    def __init__(
        self,
        name: str,
        step: str,
        host: SshTarget | pulumi.Output[SshTarget],
        spec: pulumi.Input[dict] | None,
        host_keys: HostKeyPolicy,
        purge_cache: bool = False,
        secrets: pulumi.Input[dict] | None = None,
        sudo_password: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        props = {
            **step_inputs(step, host, spec, host_keys, purge_cache, secrets, sudo_password),
            **dict.fromkeys(OUTPUTS),
        }
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["secrets", "sudo_password"])
        )
        super().__init__(StepProvider(), name, props, opts)
