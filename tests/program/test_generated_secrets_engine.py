"""The real Pulumi engine keeps a generated secret when its pickled provider changes (issue 15).

`_GeneratedSecretProvider` lives in an importable module, so dill pickles it by reference: editing its
code leaves `__provider` as it was. What does change it is the pickle itself (an SDK, dill or Python
upgrade: Python 3.14 raised the default pickle protocol from 4 to 5), which the second program version
reproduces with the real `GeneratedSecret` and nothing else changed.
"""

import json

import pytest

pytestmark = pytest.mark.engine

PULUMI_YAML = """name: generated-secrets
runtime:
  name: python
  options:
    virtualenv: .venv
"""

PROGRAM = """import pickle

import pulumi

from components.secrets import GeneratedSecret

pickle.DEFAULT_PROTOCOL = {protocol}  # read by the SDK's serialize_provider at each call
pulumi.export("token", GeneratedSecret("token").value)
"""


def deploy(project, protocol: int) -> None:
    (project.workdir / "__main__.py").write_text(PROGRAM.format(protocol=protocol))
    project.run("up", "--yes", "--skip-preview")


def token(project) -> str:
    return json.loads(project.run("stack", "output", "--json", "--show-secrets").stdout)["token"]


def secret_state(project) -> dict:
    """The GeneratedSecret's state, secrets shown: id, inputs and outputs (each with `__provider`)."""
    resources = json.loads(project.run("stack", "export", "--show-secrets").stdout)["deployment"]["resources"]
    (resource,) = (r for r in resources if r["urn"].endswith("::token"))
    return resource


def test_a_generated_secret_survives_a_changed_provider_and_a_refresh(pulumi_project):
    (pulumi_project.workdir / "Pulumi.yaml").write_text(PULUMI_YAML)
    pulumi_project.new_stack("secrets", {})
    deploy(pulumi_project, protocol=4)
    created, before = token(pulumi_project), secret_state(pulumi_project)
    assert len(created) >= 32

    (pulumi_project.workdir / "__main__.py").write_text(PROGRAM.format(protocol=5))
    preview = json.loads(pulumi_project.run("preview", "--json").stdout)
    assert preview["changeSummary"] == {"same": 2}  # the stack and the secret: no update, no replace
    deploy(pulumi_project, protocol=5)
    after = secret_state(pulumi_project)
    # Positive control: the engine was handed a different provider, so this run could have lost the value.
    assert after["inputs"]["__provider"] != before["inputs"]["__provider"]
    assert after["id"] == before["id"]
    assert token(pulumi_project) == created

    pulumi_project.run("refresh", "--yes", "--skip-preview")
    assert secret_state(pulumi_project)["id"] == before["id"]
    assert token(pulumi_project) == created
