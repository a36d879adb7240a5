"""The policy pack's rules as plain functions of resource inputs, so tests hold them to recorded
previews without an engine; `policy/__main__.py` wraps them as pulumi_policy policies.

Each reads what the program really declares: the units of the `ServingRelease` (what systemd will
run), the `ModelArtifact`'s source, the node steps that exist, and the `Node` component's stated
host-key check and lab flag (`stack.disclosed`). The pack imports nothing of the project: an
organization may enforce it on any checkout of the stack. Values unknown at preview are skipped
(the same rule runs again at `up`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

RAY_AUTH_UNITS = ("ray-head", "ray-worker", "vllm")
"""Every Ray process (and vLLM's Ray driver) must carry the token: the servers and the client alike."""
PINNED_REVISION = re.compile(r"^[^@\s]+@[0-9a-f]{40}$")
ALL_INTERFACES = "0.0.0.0"


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    resource_type: str
    """The suffix of the type the rule reads (`provisioning:ServingRelease`), or "" for a stack rule."""
    check: Callable[..., list[str]]
    """(inputs) -> violations for a resource rule; (resources as (type, inputs) pairs) for a stack rule."""


def unit_environment(unit_text: str) -> dict[str, str]:
    """The `Environment=` assignments of a systemd unit (one per line, as `stack.systemd_unit` writes them)."""
    environment = {}
    for line in unit_text.splitlines():
        if line.startswith("Environment="):
            key, _, value = line.removeprefix("Environment=").strip('"').partition("=")
            environment[key] = value
    return environment


def exec_arguments(unit_text: str) -> list[str]:
    """The words of a unit's `ExecStart=` (continuation lines joined)."""
    joined = unit_text.replace("\\\n", " ")
    line = next((line for line in joined.splitlines() if line.startswith("ExecStart=")), "")
    return line.removeprefix("ExecStart=").split()


def _units(release: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    spec = release.get("spec")
    if not isinstance(spec, Mapping):
        return ()
    return (unit for phase in spec.get("phases") or () for unit in phase)


def ray_token_auth(release: Mapping[str, Any]) -> list[str]:
    return [
        f"{unit['host']}'s {unit['service']['unit']} runs Ray without `RAY_AUTH_MODE=token`: anyone who reaches "
        "its ports could join the cluster or run code on it"
        for unit in _units(release)
        if unit["role"] in RAY_AUTH_UNITS and unit_environment(unit["service"]["unit_text"]).get("RAY_AUTH_MODE") != "token"
    ]  # fmt: skip


def api_not_open_without_tls(release: Mapping[str, Any]) -> list[str]:
    violations = []
    for unit in _units(release):
        if unit["role"] != "api-front":
            continue
        arguments = exec_arguments(unit["service"]["unit_text"])
        listen = next((argument.removeprefix("--listen=") for argument in arguments if argument.startswith("--listen=")), "")
        tls = any(argument.startswith("--tls-cert=") for argument in arguments)
        if listen.rpartition(":")[0] == ALL_INTERFACES and not tls:
            violations.append(
                f"the API on {unit['host']} listens on every interface ({listen}) without TLS: the API key and "
                "every prompt cross the network in clear; set security.tls, or security.api_bind: cluster"
            )
    return violations


def model_revision_pinned(model: Mapping[str, Any]) -> list[str]:
    source = model.get("huggingface")
    if not isinstance(source, str) or PINNED_REVISION.match(source):
        return []
    return [f"the model `{source}` is not pinned to a 40-hex commit: a branch or tag can move under the cluster"]


def host_keys_verified(node: Mapping[str, Any]) -> list[str]:
    if node.get("host_keys") != "ignore" or node.get("lab") is not False:
        return []
    return [f"{node.get('address')} is not a lab host but its SSH host key is not checked (`ssh.host_keys: ignore`)"]


def firewall_on(resources: Iterable[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """Every host of the stack (each has a `facts` step) also has a `firewall` step."""
    hosts, guarded = set(), set()
    for resource_type, inputs in resources:
        if resource_type.endswith("hosts:HostFacts"):
            hosts.add(inputs["host"]["name"])
        elif resource_type.endswith("provisioning:NodeStep") and inputs.get("step") == "firewall":
            guarded.add(inputs["host"]["name"])
    return [f"{host} has no host firewall (`security.firewall: false`): Ray's and vLLM's unauthenticated ports "
            "are open to every machine that reaches it" for host in sorted(hosts - guarded)]  # fmt: skip


RULES = (
    Rule("ray-token-auth", "Every Ray unit runs with token authentication.", "provisioning:ServingRelease", ray_token_auth),
    Rule("api-not-open-without-tls", "The API listens on all interfaces only with TLS.", "provisioning:ServingRelease",
         api_not_open_without_tls),
    Rule("model-revision-pinned", "Hugging Face weights are pinned to a 40-hex commit.", "artifacts:ModelArtifact",
         model_revision_pinned),
    Rule("host-keys-verified", "SSH host keys are checked on every host outside the lab.", "index:Node",
         host_keys_verified),
    Rule("firewall-on", "Every host runs the stack's firewall.", "", firewall_on),
)  # fmt: skip
