"""A pull-request comment from `pulumi preview --json --show-sames` of this stack: per host which steps
change and why, the planner's decision, ports and bind addresses, which secrets rotate (by name) and
what will restart.

Pure: it reads the preview's JSON and nothing else (no Pulumi, no config), so it renders a recorded
preview exactly as a live one. Everything it shows is stated by the program itself as resource
inputs (`stack.disclosed`, the steps' specs, the release's units); a preview carries each resource's
old inputs (`oldState`) beside its new ones (`newState`), and this module compares the two, since
the dynamic providers return no detailed diff. Secret inputs appear only as `[secret]` in the JSON;
none is ever printed, and a rotation is known by name from its `SecretVersion` resource.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SECRET = "[secret]"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""How a preview's JSON shows a value known only at `up`."""
RAY_ROLES = ("ray-head", "ray-worker")
STEP_TOPICS = {
    "facts": "host facts",
    "os-preflight": "OS check",
    "nvidia-preflight": "NVIDIA driver check",
    "system-packages": "system packages",
    "firewall": "firewall rules",
    "python-runtime": "interpreter",
    "python-env": "package set",
    "model-weights": "weights",
    "runtime-env": "environment (node.env)",
}
"""What each node step manages, as a reviewer reads it; a step missing here is shown by its name."""
INPUT_REASONS = {
    "code": "the provisioning code changed",
    "host": "how the host is reached changed",
    "host_keys": "the SSH host-key check changed",
    "purge_cache": "`purge_caches` changed",
    "sudo_password": "the sudo password changed",
}
SECRET_INPUTS = frozenset({"secrets", "sudo_password", "hf_token", "value"})
"""Inputs whose content is never shown, whatever the JSON holds."""
MAX_TOKENS = 8


@dataclass
class Resource:
    name: str
    kind: str
    """The type's last part: `NodeStep`, `ServingRelease`, `Node`, ..."""
    op: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None

    @property
    def inputs(self) -> dict[str, Any]:
        return self.new if self.new is not None else self.old or {}


@dataclass
class Preview:
    resources: list[Resource]
    counts: dict[str, int]
    by_kind: dict[str, list[Resource]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, document: dict) -> Preview:
        resources = []
        for step in document.get("steps") or []:
            urn = step["urn"]
            old, new = step.get("oldState"), step.get("newState")
            resources.append(Resource(
                name=urn.rsplit("::", 1)[1], kind=urn.split("::")[2].rsplit("$", 1)[-1].rsplit(":", 1)[-1],
                op=step["op"], old=old and old.get("inputs", {}), new=new and new.get("inputs", {}),
            ))  # fmt: skip
        preview = cls(resources, document.get("changeSummary") or {})
        for resource in resources:
            preview.by_kind.setdefault(resource.kind, []).append(resource)
        return preview

    def one(self, kind: str) -> Resource | None:
        found = self.by_kind.get(kind) or []
        return found[0] if found else None


def render(document: dict, stack: str | None = None) -> str:
    """The Markdown summary of one preview (`pulumi preview --json --show-sames`)."""
    preview = Preview.from_json(document)
    rotated = rotated_secrets(preview)
    sections = [
        _header(preview, stack),
        _plan_section(preview),
        _hosts_section(preview),
        _model_section(preview),
        _restarts_section(preview, rotated),
        _listeners_section(preview),
        _secrets_section(preview, rotated),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _header(preview: Preview, stack: str | None) -> str:
    order = ("create", "update", "replace", "delete", "same")
    counts = ", ".join(f"{preview.counts[op]} {op}" for op in order if preview.counts.get(op))
    title = f"### `pulumi preview` of {stack}" if stack else "### `pulumi preview`"
    return f"{title}\n\n{counts or 'no resources'}"


def _plan_section(preview: Preview) -> str:
    serving = preview.one("Serving")
    if serving is None or "plan" not in serving.inputs:
        return ""
    new, old = serving.inputs["plan"], (serving.old or {}).get("plan")
    facts = [
        ("pipeline x tensor", lambda plan: f"{plan['pipeline_size']} x {plan['tensor_size']}"),
        ("layer split", lambda plan: ", ".join(map(str, plan["layer_partition"] or [])) or "vLLM's even split"),
        ("context length (max_model_len)", lambda plan: str(plan["max_model_len"] or "model default")),
        ("KV cache tokens", lambda plan: f"{plan['kv_cache_tokens']:,}" if plan.get("kv_cache_tokens") else "-"),
        ("gpu_memory_utilization", lambda plan: str(plan.get("gpu_memory_utilization", "-"))),
    ]
    lines = ["#### Serving plan", "", "| | now | after |", "|---|---|---|"]
    for label, show in facts:
        after = show(new)
        before = show(old) if old else "-"
        lines.append(f"| {label} | {before} | {_changed(before, after) if old else after} |")
    if new["gpus"]:
        lines += ["", "| host | GPU | stage | layers | needs GiB | budget GiB | card GB |", "|---|---|---|---|---|---|---|"]
        for gpu in new["gpus"]:
            lines.append(
                f"| {gpu['host']} | {gpu['gpu']} | {gpu['stage']} | {gpu['layers']} | {gpu['needed_gb']:.2f} "
                f"| {gpu['budget_gb']:.2f} | {gpu['memory_gb']:g} |"
            )
    return "\n".join(lines)


def _hosts_section(preview: Preview) -> str:
    steps: dict[str, list[Resource]] = {}
    for resource in [*preview.by_kind.get("HostFacts", []), *preview.by_kind.get("NodeStep", [])]:
        steps.setdefault(resource.inputs.get("host", {}).get("name", "?"), []).append(resource)
    lines = ["#### Hosts"]
    for node in preview.by_kind.get("Node", []):
        host = node.inputs
        described = f"{host.get('address')}, {host.get('role')}, {_gpus(host.get('gpus') or [])}"
        if node.op == "create":
            lines += ["", f"**{node.name}** (new: {described}): every step runs: {_names(steps.get(node.name, []))}"]
            continue
        if node.op == "delete":
            lines += ["", f"**{node.name}** (removed: {described}): its steps are undone and its units stop"]
            continue
        changing = [step for step in steps.get(node.name, []) if step.op not in ("same", "read")]
        if not changing:
            lines += ["", f"**{node.name}** ({described}): no step changes"]
            continue
        lines += ["", f"**{node.name}** ({described}):"]
        lines += [f"- {_step_line(step)}" for step in changing]
    return "\n".join(lines) if len(lines) > 1 else ""


def _step_line(step: Resource) -> str:
    name = step.inputs.get("step", step.name)
    topic = STEP_TOPICS.get(name, name)
    if step.op == "create":
        return f"`{name}` ({topic}): created"
    if step.op == "delete":
        return f"`{name}` ({topic}): removed"
    reasons = _reasons(step.old or {}, step.new or {})
    return f"`{name}` ({topic}), {step.op}: {'; '.join(reasons) or 'the provider found drift'}"


def _reasons(old: dict, new: dict) -> list[str]:
    reasons = []
    if new.get("spec") == UNKNOWN:
        reasons.append("its spec is known at `up` (an artifact it reads is rebuilt)")
    elif old.get("spec") != new.get("spec"):
        reasons.append("; ".join(_field_changes("spec", old.get("spec"), new.get("spec"))))
    reasons += [reason for key, reason in INPUT_REASONS.items() if old.get(key) != new.get(key)]
    return reasons


def _field_changes(path: str, old: Any, new: Any) -> list[str]:
    """Each changed leaf as `path: old -> new`, long texts as the words they lose and gain."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [change for key in keys if old.get(key) != new.get(key)
                for change in _field_changes(f"{path}.{key}", old.get(key), new.get(key))]  # fmt: skip
    if path.rsplit(".", 1)[-1] in SECRET_INPUTS or SECRET in (old, new):
        return [f"`{path}` changes"]
    if isinstance(old, str) and isinstance(new, str) and max(len(old), len(new)) > 60:
        return [f"`{path}`: {_word_changes(old, new)}"]
    if isinstance(old, list) and isinstance(new, list) and all(isinstance(item, str) for item in old + new):
        return [f"`{path}`: {_word_changes(' '.join(old), ' '.join(new))}"]
    return [f"`{path}`: {_short(old)} -> {_short(new)}"]


def _word_changes(old: str, new: str) -> str:
    old_words, new_words = _words(old), _words(new)
    removed = [word for word in old_words if word not in set(new_words)]
    added = [word for word in new_words if word not in set(old_words)]
    parts = [f"-`{word}`" for word in removed[:MAX_TOKENS]] + [f"+`{word}`" for word in added[:MAX_TOKENS]]
    more = len(removed) + len(added) - len(parts)
    return " ".join(parts + ([f"(+{more} more)"] if more > 0 else [])) or "whitespace only"


def _words(text: str) -> list[str]:
    """The words of a unit or a ruleset, without the separators that only end a list item (`a,` `}`)."""
    return [word for word in (part.strip(",{}") for part in text.split()) if word]


def _model_section(preview: Preview) -> str:
    model = preview.one("ModelArtifact")
    if model is None or model.op == "same":
        return ""
    source = lambda inputs: inputs.get("huggingface") or inputs.get("path") or "-"  # noqa: E731
    if model.old is None:
        return f"#### Model\n\n{source(model.inputs)}: fetched once on the controller, pushed to every node"
    return f"#### Model\n\n{source(model.old)} -> {source(model.inputs)}: the new weights land beside the serving ones"


def rotated_secrets(preview: Preview) -> list[str]:
    """The config secrets whose value changes (their `SecretVersion` is updated), by name."""
    return sorted(version.inputs["secret"] for version in preview.by_kind.get("SecretVersion", []) if version.op == "update")


@dataclass(frozen=True)
class UnitChange:
    host: str
    role: str
    unit: str
    action: str
    """`start`, `restart`, `stop` or `keep`."""
    why: str


def unit_changes(preview: Preview, rotated: list[str]) -> list[UnitChange]:
    """What the release does to each unit: a new unit starts, a changed one restarts, one whose
    secret rotates restarts, Ray's workers follow their head, and vLLM and the API front restart
    whenever a Ray unit (re)started under them (`deploys.rollout`)."""
    release = preview.one("ServingRelease")
    if release is None or not isinstance(release.inputs.get("spec"), dict):
        return []
    serving = preview.one("Serving")
    secret_files = (serving.inputs.get("secret_files") or {}) if serving else {}
    rotated_paths = {path: name for name in rotated for path in secret_files.get(name, [])}
    old, new = _units(release.old or {}), _units(release.new or {})
    changes: dict[tuple[str, str], UnitChange] = {}
    for key, service in new.items():
        before = old.get(key)
        reading = sorted({rotated_paths[f["path"]] for f in service.get("secret_files", []) if f["path"] in rotated_paths})
        if before is None:
            action, why = "start", "new"
        elif before != service:
            action, why = "restart", "; ".join(_field_changes("unit", before, service))
        elif reading:
            action, why = "restart", f"{', '.join(f'`{name}`' for name in reading)} rotates"
        else:
            action, why = "keep", ""
        changes[key] = UnitChange(key[0], key[1], service.get("unit", ""), action, why)
    head_restarts = any(c.role == "ray-head" and c.action == "restart" for c in changes.values())
    ray_moves = any(c.role in RAY_ROLES and c.action != "keep" for c in changes.values())
    for key, change in changes.items():
        if change.action != "keep":
            continue
        if change.role == "ray-worker" and head_restarts:
            changes[key] = UnitChange(*key, change.unit, "restart", "follows the Ray head")
        elif change.role not in RAY_ROLES and ray_moves:
            changes[key] = UnitChange(*key, change.unit, "restart", "a Ray unit (re)starts under it")
    gone = [UnitChange(*key, service.get("unit", ""), "stop", "removed") for key, service in old.items() if key not in new]
    return [*changes.values(), *gone]


def _units(inputs: dict) -> dict[tuple[str, str], dict]:
    spec = inputs.get("spec")
    if not isinstance(spec, dict):
        return {}
    return {(unit["host"], unit["role"]): unit["service"] for phase in spec.get("phases", []) for unit in phase}


def _restarts_section(preview: Preview, rotated: list[str]) -> str:
    changes = unit_changes(preview, rotated)
    if not changes:
        return ""
    moving = [change for change in changes if change.action != "keep"]
    lines = ["#### What restarts", ""]
    if not moving:
        return "\n".join(lines + ["Nothing: every unit keeps running."])
    lines += ["| host | unit | action | why |", "|---|---|---|---|"]
    lines += [f"| {c.host} | {c.unit} | {c.action} | {c.why} |" for c in moving]
    kept = [f"{c.host} {c.unit}" for c in changes if c.action == "keep"]
    if kept:
        lines += ["", f"Keep running: {', '.join(kept)}."]
    return "\n".join(lines)


def _listeners_section(preview: Preview) -> str:
    serving = preview.one("Serving")
    if serving is None or "listeners" not in serving.inputs:
        return ""
    before = {item["service"]: item for item in (serving.old or {}).get("listeners", [])}
    lines = ["#### Ports and bind addresses", "", "| service | host | listens on | TLS |", "|---|---|---|---|"]
    for item in serving.inputs["listeners"]:
        where = f"{item['address']}:{item['port']}"
        old = before.get(item["service"])
        if old is not None and (old["address"], old["port"]) != (item["address"], item["port"]):
            where = f"{old['address']}:{old['port']} -> {where}"
        lines.append(f"| {item['service']} | {item['host']} | {where} | {'yes' if item['tls'] else 'no'} |")
    return "\n".join(lines)


def _secrets_section(preview: Preview, rotated: list[str]) -> str:
    versions = preview.by_kind.get("SecretVersion", [])
    if not versions:
        return ""
    created = sorted(version.inputs["secret"] for version in versions if version.op == "create")
    lines = ["#### Secrets (names only)", ""]
    if rotated:
        lines.append(f"Rotate: {', '.join(f'`{name}`' for name in rotated)}.")
    if created:
        lines.append(f"Set for the first time: {', '.join(f'`{name}`' for name in created)}.")
    if not rotated and not created:
        lines.append("No secret rotates.")
    return "\n".join(lines)


def _names(steps: list[Resource]) -> str:
    return ", ".join(f"`{step.inputs.get('step', step.name)}`" for step in steps) or "-"


def _gpus(gpus: list[dict]) -> str:
    return ", ".join(f"{gpu['name']} {gpu['memory_gb']:g} GB" for gpu in gpus) or "no GPU"


def _changed(before: str, after: str) -> str:
    return f"**{after}**" if before != after else after


def _short(value: Any) -> str:
    text = "unset" if value is None else str(value)
    return f"`{text}`" if len(text) <= 60 else f"`{text[:57]}...`"
