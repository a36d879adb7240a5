"""The Pulumi program end to end: a scratch copy driven by the real Pulumi CLI against its own
file backend (never the project's own state), and the dev stack served for real on two lab hosts,
shared by the served-stack tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from artifacts.paths import REPO_ROOT
from lab.paths import INVENTORY_FILE
from tools.pulumi_env import PULUMI_BIN, scratch_pulumi_env


class PulumiProject:
    """A copy of the project's program in `workdir` (sharing `components/`), with its own backend.

    `own_packages`: the package sources (`artifacts/`, `plugins/`) are copies, so a test can change
    the node package set as a user's upgrade does; the project root is then `workdir`, its caches
    and the lab's keys still the checkout's (`.cache`, `.tools`, `.lab` linked)."""

    def __init__(self, workdir: Path, own_packages: bool = False):
        self.workdir = workdir
        shutil.copy(REPO_ROOT / "Pulumi.yaml", workdir)
        shutil.copy(REPO_ROOT / "__main__.py", workdir)
        packages, caches = ("artifacts", "plugins"), (".cache", ".tools", ".lab")
        for name in packages if own_packages else ():
            shutil.copytree(REPO_ROOT / name, workdir / name, ignore=shutil.ignore_patterns("__pycache__"))
        for shared in ("deploys", "cloud", "stack", "components", "models", ".venv", *(caches if own_packages else packages)):
            (workdir / shared).symlink_to(REPO_ROOT / shared)
        self.env = scratch_pulumi_env(workdir, passphrase="engine-tests")

    def new_stack(self, name: str, config: dict) -> None:
        """Writes `Pulumi.<name>.yaml` with `config` (keys without the namespace) and selects it."""
        self.new_stack_config(name, config)
        self.run("stack", "init", name)

    def new_stack_config(self, name: str, config: dict) -> None:
        """(Re)writes the config of `Pulumi.<name>.yaml` with `config` (keys without the namespace),
        keeping what `stack init` wrote there (the encryption salt)."""
        path = self.workdir / f"Pulumi.{name}.yaml"
        document = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
        document["config"] = {f"ray-vllm-stack:{key}": value for key, value in config.items()}
        path.write_text(yaml.safe_dump(document))

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`pulumi <args>` to its end (at most 15 min). Its output goes to files, not pipes: a process
        it leaves behind holding a pipe would keep a reader waiting after pulumi itself is done."""
        with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
            returncode = subprocess.run(
                ["pulumi", *args, "--non-interactive"], cwd=self.workdir, env=self.env,
                stdout=stdout, stderr=stderr, timeout=900,
            ).returncode  # fmt: skip
            stdout.seek(0)
            stderr.seek(0)
            result = subprocess.CompletedProcess(args, returncode, stdout.read(), stderr.read())
        if check and result.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def resources(self) -> list[dict]:
        return json.loads(self.run("stack", "export").stdout)["deployment"].get("resources") or []

    def preview_steps(self) -> list[dict]:
        """The steps `pulumi preview --json` would take: op, type and name of each."""
        steps = json.loads(self.run("preview", "--json").stdout).get("steps", [])
        return [{"op": s["op"], "type": s["urn"].split("::")[2].split("$")[-1], "name": s["urn"].split("::")[3]} for s in steps]


@pytest.fixture
def pulumi_project(tmp_path: Path) -> PulumiProject:
    if not (PULUMI_BIN / "pulumi").exists():
        pytest.fail(f"the pinned Pulumi CLI is missing at {PULUMI_BIN}; run `make setup`")
    return PulumiProject(tmp_path)


def dev_stack_config() -> dict:
    document = yaml.safe_load((REPO_ROOT / "Pulumi.dev.yaml").read_text())["config"]
    config = {key.split(":", 1)[1]: value for key, value in document.items()}
    config["inventory"] = str(INVENTORY_FILE)
    return config


class ServedStack:
    def __init__(self, project: PulumiProject):
        self.project = project
        self.timings: dict[str, float] = {}

    def timed(self, label: str, *args: str, check: bool = True):
        started = time.monotonic()
        result = self.project.run(*args, check=check)
        self.timings[label] = round(time.monotonic() - started, 1)
        print(f"{label}: {self.timings[label]} s")
        return result

    def outputs(self) -> dict:
        return json.loads(self.project.run("stack", "output", "--json", "--show-secrets").stdout)

    def planned_changes(self) -> dict[str, str]:
        """Resource name -> operation, for every resource `preview` would touch."""
        steps = json.loads(self.project.run("preview", "--json").stdout).get("steps", [])
        return {step["urn"].split("::")[-1]: step["op"] for step in steps if step["op"] != "same"}


@pytest.fixture(scope="session")
def served_stack(lab_hosts, tmp_path_factory):  # noqa: F811
    project = PulumiProject(tmp_path_factory.mktemp("dev-stack"), own_packages=True)
    project.new_stack("dev", dev_stack_config())
    stack = ServedStack(project)
    stack.timed("cold up", "up", "--yes", "--skip-preview")
    yield stack
    project.run("destroy", "--yes", check=False)
