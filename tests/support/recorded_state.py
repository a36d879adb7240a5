"""A stack's state as a successful `pulumi up` would have left it, made from its own preview, for
stacks whose hosts cannot be reached (the gpu-pair example): an engine test can then preview a
*change* of such a stack offline and see updates, replaces and deletes, not only creates.

    record_applied_state(project, "gpu-pair", secrets={"api_key": ..., "ray_token": ...})

Every resource of the preview is written with its inputs as its outputs; the providers' own outputs
(what a host looked like) are empty and equal, so nothing reads as drift. The controller's caches
get outputs of the right shape that point nowhere (`RECORDED_ARTIFACTS`): steps that need them can
then render their specs, and a second pass records those. The Serving release's secret files hold
`release_secrets` of the given values; the state is imported with them as secrets (the CLI encrypts
them), so the next preview diffs them as `up` would.
"""

from __future__ import annotations

import json
from typing import Any

from stack.release import release_secrets

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""How a preview's JSON shows a value not known until `up`."""
SECRET_SIGNATURE = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
"""How a deployment marks a secret value (its `plaintext` is JSON; `stack import` encrypts it)."""

RECORDED_ARTIFACTS: dict[str, dict[str, Any]] = {
    "Wheelhouse": {"path": "/recorded/wheelhouse", "key": "recorded", "lock_file": "requirements.lock", "installer": "installer/uv",
                   "plugin_wheels": [], "packages": ["vllm==0.0.0"], "manifest": "", "manifest_digest": "",
                   "total_bytes": 0, "downloaded_bytes": 0},
    "PythonInterpreter": {"path": "/recorded/python", "key": "recorded", "version": "3.11.2", "glibc_floor": "2.35",
                          "libraries": [], "manifest": "", "manifest_digest": "", "total_bytes": 0, "build_seconds": 0},
    "ModelArtifact": {"local_path": "/recorded/model", "manifest": "", "manifest_digest": "", "total_bytes": 0,
                      "downloaded_bytes": 0, "files_stamp": ""},
}  # fmt: skip
"""Outputs of the controller's caches, by resource type: every field `CacheResource.files()` reads (one
missing from state would read as unknown at preview, and so would every spec built from it)."""
CACHE_OUTPUTS = {"damage": [], "cache_id": "recorded"}
STEP_OUTPUTS = {"observed": {}, "applied": {}, "changed": False, "pushed_bytes": 0, "seconds": 0.0}


def record_applied_state(project, stack: str, secrets: dict[str, str]) -> None:
    """Imports into `stack` of `project` (a `PulumiProject`) the state `up` would leave; two passes, as
    steps that read the caches' outputs render their specs only once those are in state."""
    for _ in range(2):
        preview = json.loads(project.run("preview", "--json", "--show-sames", "--stack", stack).stdout)
        deployment = json.loads(project.run("stack", "export", "--stack", stack).stdout)
        deployment["deployment"]["resources"] = applied_resources(preview["steps"], secrets)
        path = project.workdir / f"{stack}-recorded.json"
        path.write_text(json.dumps(deployment))
        project.run("stack", "import", "--stack", stack, "--file", str(path))


def applied_resources(steps: list[dict], secrets: dict[str, str]) -> list[dict]:
    """The resources of a preview's steps, each after its parent and dependencies (as state must list them)."""
    providers: dict[str, dict] = {}
    resources = []
    for step in steps:
        state = step.get("newState") or step["oldState"]
        resource = {key: state[key] for key in ("urn", "custom", "type", "parent", "dependencies",
                                                "propertyDependencies", "additionalSecretOutputs") if key in state}  # fmt: skip
        given = state.get("inputs") or {}
        inputs = {key: _recorded(key, value, given, secrets) for key, value in given.items()}
        resource["inputs"] = inputs
        if state["custom"]:
            provider_urn = state["provider"].rsplit("::", 1)[0]
            provider = providers.setdefault(provider_urn, _provider(provider_urn, len(providers)))
            resource["provider"] = f"{provider_urn}::{provider['id']}"
            resource["id"] = state["urn"].rsplit("::", 1)[1]
            kind = state["type"].rsplit(":", 1)[1]
            extra = {**RECORDED_ARTIFACTS[kind], **CACHE_OUTPUTS} if kind in RECORDED_ARTIFACTS else STEP_OUTPUTS
            resource["outputs"] = {**inputs, **extra}
        else:
            resource["outputs"] = {}
        resources.append(resource)
    return _ordered([*providers.values(), *resources])


def _ordered(resources: list[dict]) -> list[dict]:
    by_urn = {resource["urn"]: resource for resource in resources}
    done: dict[str, dict] = {}

    def visit(resource: dict) -> None:
        if resource["urn"] in done:
            return
        before = [resource.get("parent"), *resource.get("dependencies", []), resource.get("provider", "").rsplit("::", 1)[0]]
        for urn in before:
            if urn in by_urn:
                visit(by_urn[urn])
        done[resource["urn"]] = resource

    for resource in resources:
        visit(resource)
    return list(done.values())


def _provider(urn: str, index: int) -> dict:
    return {"urn": urn, "custom": True, "id": f"00000000-0000-4000-8000-{index:012d}", "type": urn.split("::")[2],
            "inputs": {}, "outputs": {}}  # fmt: skip


def _recorded(key: str, value: Any, inputs: dict, secrets: dict[str, str]) -> Any:
    """An input as `up` would have stored it: the release's secret files and each `SecretVersion`'s
    value filled in, unknowns null."""
    if key == "secrets" and value == "[secret]":
        return _secret(release_secrets(secrets["ray_token"], secrets["api_key"], None))
    if key == "value" and value == "[secret]" and inputs.get("secret") in secrets:
        return _secret(secrets[inputs["secret"]])
    if value == UNKNOWN:
        return None
    return value


def _secret(value: Any) -> dict:
    return {**SECRET_SIGNATURE, "plaintext": json.dumps(value)}
