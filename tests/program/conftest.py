"""The dev stack served for real on two lab hosts, shared by the tests of this folder."""

import json
import time

import pytest
import yaml

from artifacts.paths import REPO_ROOT
from lab.paths import INVENTORY_FILE
from tests.engine.conftest import PulumiProject


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
    project = PulumiProject(tmp_path_factory.mktemp("dev-stack"))
    project.new_stack("dev", dev_stack_config())
    stack = ServedStack(project)
    stack.timed("cold up", "up", "--yes", "--skip-preview")
    yield stack
    project.run("destroy", "--yes", check=False)
