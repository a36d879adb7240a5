"""The policy pack's rules on the resource inputs of a recorded offline preview of the gpu-pair stack
(`tests/tools/previews/gpu-pair-new.json`), each broken the way a config or a code change would break it;
the recorded inputs themselves are every test's positive control."""

import copy
import json
from pathlib import Path

from policy.rules import (
    RULES,
    api_not_open_without_tls,
    firewall_on,
    host_keys_verified,
    model_revision_pinned,
    ray_token_auth,
)

PREVIEW = json.loads((Path(__file__).parents[1] / "tools" / "previews" / "gpu-pair-new.json").read_text())
RESOURCES = [(step["newState"]["type"], step["newState"].get("inputs", {})) for step in PREVIEW["steps"]]


def inputs(name: str) -> dict:
    return copy.deepcopy(next(step["newState"]["inputs"] for step in PREVIEW["steps"] if step["urn"].endswith(f"::{name}")))


def units(release: dict) -> dict[str, dict]:
    return {unit["role"]: unit["service"] for phase in release["spec"]["phases"] for unit in phase}


def test_every_rule_passes_the_shipped_stack():
    for rule in RULES:
        if rule.resource_type:
            found = [props for kind, props in RESOURCES if kind.endswith(rule.resource_type)]
            assert found, rule.name
            assert [violation for props in found for violation in rule.check(props)] == [], rule.name
        else:
            assert rule.check(RESOURCES) == [], rule.name


def test_a_ray_unit_without_token_auth_is_named():
    release = inputs("serving-release")
    assert ray_token_auth(release) == []
    worker = units(release)["ray-worker"]
    worker["unit_text"] = worker["unit_text"].replace("Environment=RAY_AUTH_MODE=token\n", "")
    assert ray_token_auth(release) == [
        "gpu16's rvs-ray-worker.service runs Ray without `RAY_AUTH_MODE=token`: anyone who reaches its ports "
        "could join the cluster or run code on it"
    ]


def test_an_api_on_all_interfaces_needs_tls():
    release = inputs("serving-release")
    front = units(release)["api-front"]
    front["unit_text"] = front["unit_text"].replace("--listen=192.168.50.11:8000", "--listen=0.0.0.0:8000")
    assert "listens on every interface (0.0.0.0:8000) without TLS" in api_not_open_without_tls(release)[0]
    front["unit_text"] = front["unit_text"].replace("--listen=0.0.0.0:8000", "--listen=0.0.0.0:8000 --tls-cert=/c")
    assert api_not_open_without_tls(release) == []


def test_a_floating_model_revision_is_refused():
    model = inputs("model")
    assert model_revision_pinned(model) == []
    for floating in ("Qwen/Qwen2.5-32B-Instruct-AWQ@main", "Qwen/Qwen2.5-32B-Instruct-AWQ", "Qwen/Q@5C7CB76A268FC6CFBB9C4777EB24BA6E27F9EE6C"):
        model["huggingface"] = floating
        assert model_revision_pinned(model) == [
            f"the model `{floating}` is not pinned to a 40-hex commit: a branch or tag can move under the cluster"
        ]
    assert model_revision_pinned({"path": "/models/tiny"}) == []  # a local folder: its files are hashed instead


def test_unchecked_host_keys_only_in_the_lab():
    node = inputs("gpu24")
    assert host_keys_verified(node) == []
    node["host_keys"] = "ignore"
    assert host_keys_verified(node) == [
        "192.168.50.11 is not a lab host but its SSH host key is not checked (`ssh.host_keys: ignore`)"
    ]
    assert host_keys_verified({**node, "lab": True}) == []


def test_a_host_without_its_firewall_step_is_named():
    without = [(kind, props) for kind, props in RESOURCES
               if not (props.get("step") == "firewall" and props["host"]["name"] == "gpu16")]  # fmt: skip
    assert firewall_on(RESOURCES) == []
    assert firewall_on(without)[0].startswith("gpu16 has no host firewall")
