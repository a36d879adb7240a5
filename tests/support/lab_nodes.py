"""Lab hosts as nodes of the stack, for the tests that provision them (components, examples).

Only provisioning's own paths on the hosts are reset, so the first provision starts from scratch.
"""

from __future__ import annotations

import pytest
import yaml

from artifacts.debs import prepare_debs
from artifacts.paths import REPO_ROOT
from artifacts.python_build import prepare_python
from artifacts.weights import prepare_model
from deploys.layout import PYTHON_PREFIX
from deploys.specs import Spec
from stack.config import HostConfig, NetworkConfig
from stack.node_steps import SYSTEM_PACKAGES, NodeInputs, node_specs, pushed_release, pushed_releases
from tests.support.small_wheelhouse import small_wheelhouse

TINY_MODEL = REPO_ROOT / ".cache" / "models" / "tiny-qwen2"
EXTRA_PACKAGE = "jq"
"""Not in the lab's base image: its .debs (and its dependencies') come from the controller."""
PROVISIONED_PATHS = ("/opt/ray-vllm-stack", "/var/cache/ray-vllm-stack", "/var/lib/ray-vllm-stack", "/etc/ray-vllm-stack")


def run_on(name: str, script: str) -> str:
    from lab import api

    done = api.run_on(name, script)
    assert done.returncode == 0, f"{name}: {script}: {done.stderr}"
    return done.stdout


def reset_provisioning(hosts: list[HostConfig]) -> None:
    """Back to the lab's base image as far as provisioning goes (its paths and the extra package)."""
    for host in hosts:
        run_on(host.name, f"rm -rf {' '.join(PROVISIONED_PATHS)}; dpkg -r {EXTRA_PACKAGE} libjq1 libonig5 >/dev/null 2>&1; true")


def host_configs(count: int) -> list[HostConfig]:
    """The lab's first `count` hosts as the stack's host configs, from the inventory `lab up` wrote."""
    entries = yaml.safe_load((REPO_ROOT / "inventory" / "dev.yaml").read_text())["hosts"][:count]
    return [
        HostConfig.model_validate({**entry, "ssh": {**entry["ssh"], "key_file": str(REPO_ROOT / entry["ssh"]["key_file"])}})
        for entry in entries
    ]


def node_step_specs(hosts: list[HostConfig]) -> dict[str, dict[str, Spec]]:
    """Per host, each step's spec in table order (`stack.node_steps`), with the stack's interpreter
    (built once, then cached), the tiny model, a small wheelhouse and one extra Debian package."""
    if not (TINY_MODEL / "config.json").is_file():
        pytest.fail("the tiny model is missing: run `make model` (`make test` builds it)")
    debs = {release: prepare_debs([*SYSTEM_PACKAGES, EXTRA_PACKAGE], release) for release in pushed_releases(hosts)}
    artifacts = {"python": prepare_python(PYTHON_PREFIX), "wheelhouse": small_wheelhouse(),
                 "model": prepare_model(str(TINY_MODEL), None)}  # fmt: skip
    return {
        host.name: node_specs(
            NodeInputs(host, NetworkConfig(), "tiny-qwen2", debs=debs.get(pushed_release(host)), **artifacts)
        )
        for host in hosts
    }
