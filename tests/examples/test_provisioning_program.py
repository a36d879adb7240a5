"""The refresh/up drift cycle through the real Pulumi engine, on two lab hosts: first `up`, a
second `up` with no changes, drift on one node found by `refresh`, repaired by `up` exactly
there, and `destroy` keeping the caches. State lives in a scratch file backend."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from artifacts.paths import REPO_ROOT
from stack.node_steps import stack_venv
from tests.support.lab_nodes import EXTRA_PACKAGE, TINY_MODEL, reset_provisioning, run_on
from tests.support.small_wheelhouse import small_wheelhouse
from tools.pulumi_env import PULUMI_BIN, scratch_pulumi_env

pytestmark = [pytest.mark.lab, pytest.mark.engine]

PROGRAM = REPO_ROOT / "examples" / "provisioning" / "__main__.py"
VENV = stack_venv("cpu")


class Stack:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        (workdir / "Pulumi.yaml").write_text(
            "name: rvs-lab-provisioning\nruntime:\n  name: python\n"
            f"  options:\n    virtualenv: {REPO_ROOT / '.venv'}\n"
        )
        (workdir / "__main__.py").write_text(PROGRAM.read_text())
        self.env = {
            **scratch_pulumi_env(workdir, passphrase="test"),
            "RVS_INVENTORY": str(REPO_ROOT / "inventory" / "dev.yaml"),
            "RVS_HOSTS": "2",
            "RVS_MODEL": str(TINY_MODEL),
            "RVS_SERVED_NAME": "tiny-qwen2",
            "RVS_WHEELHOUSE": small_wheelhouse().path,
            "RVS_EXTRA_PACKAGES": EXTRA_PACKAGE,
        }
        self.run("stack", "init", "lab")

    def run(self, *args: str) -> str:
        done = subprocess.run(["pulumi", *args, "--non-interactive"], cwd=self.workdir, env=self.env,
                              capture_output=True, text=True, timeout=1200)  # fmt: skip
        assert done.returncode == 0, f"pulumi {' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        return done.stdout

    def timed(self, *args: str) -> float:
        started = time.monotonic()
        self.run(*args)
        return time.monotonic() - started

    def changes(self) -> dict[str, str]:
        """{resource name: op} of what `pulumi preview` would do, "same" left out."""
        steps = json.loads(self.run("preview", "--json")).get("steps", [])
        return {step["urn"].split("::")[-1]: step["op"] for step in steps if step["op"] != "same"}

    def outputs(self) -> dict:
        return json.loads(self.run("stack", "output", "--json"))


@pytest.fixture(scope="module")
def stack(lab_nodes, tmp_path_factory):
    if not (PULUMI_BIN / "pulumi").exists():
        pytest.fail(f"the pinned Pulumi CLI is missing at {PULUMI_BIN}; run `make setup`")
    if not (TINY_MODEL / "config.json").is_file():
        pytest.fail("the tiny model is missing: run `make model` (`make test` builds it)")
    return Stack(tmp_path_factory.mktemp("lab-stack"))


def test_up_then_nothing_to_do(lab_nodes, stack):
    reset_provisioning(lab_nodes)
    first = stack.timed("up", "--yes", "--skip-preview")
    outputs = stack.outputs()
    fingerprints = outputs["fingerprints"]
    assert fingerprints["lab1"] == fingerprints["lab2"]
    assert outputs["runtime_env"]["lab2"]["VLLM_HOST_IP"] == "10.201.0.12"
    second = stack.timed("up", "--yes", "--skip-preview", "--expect-no-changes")
    print(f"engine: first up of 2 nodes {first:.1f} s, no-op up {second:.1f} s, pushed {outputs['pushed_bytes']}")
    assert stack.changes() == {}


def test_refresh_finds_drift_on_one_node_and_up_repairs_exactly_that(stack):
    run_on("lab2", f"{VENV}/bin/python -m pip uninstall --yes --quiet idna")
    run_on("lab2", "echo x >> /var/lib/ray-vllm-stack/models/tiny-qwen2/generation_config.json")
    run_on("lab2", "sed -i s/eth0/eth9/ /etc/ray-vllm-stack/node.env")
    stack.run("refresh", "--yes", "--skip-preview")
    drifted = {"lab2-python-env", "lab2-model-weights", "lab2-runtime-env"}
    assert stack.changes() == dict.fromkeys(drifted, "update")
    stack.run("up", "--yes", "--skip-preview")
    assert stack.changes() == {}
    assert "GLOO_SOCKET_IFNAME=eth0" in run_on("lab2", "cat /etc/ray-vllm-stack/node.env")
    run_on("lab2", "cd /var/lib/ray-vllm-stack/models/tiny-qwen2 && sha256sum --quiet -c MANIFEST.sha256")
    run_on("lab2", f"{VENV}/bin/python -c 'import idna'")
    stack.run("refresh", "--yes", "--skip-preview", "--expect-no-changes")


def test_destroy_keeps_the_caches(stack):
    stack.run("destroy", "--yes", "--skip-preview")
    for host in ("lab1", "lab2"):
        left = run_on(host, "ls /var/lib/ray-vllm-stack/models /var/cache/ray-vllm-stack/wheelhouse; "
                            f"ls {VENV} /etc/ray-vllm-stack/node.env 2>&1 || true")  # fmt: skip
        assert "tiny-qwen2" in left and "small-" in left
        assert "No such file" in left  # the venv and the env file went with their resources
    assert (TINY_MODEL / "config.json").is_file()
