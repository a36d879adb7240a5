"""The real Pulumi engine: preview without hosts, bad input stops before any change, outputs via the CLI."""


import pytest
import yaml

from artifacts.paths import REPO_ROOT

pytestmark = pytest.mark.engine


def dev_config(inventory_hosts: list[dict], tmp_path) -> dict:
    """The committed dev stack's config, with an inventory of hosts that do not exist."""
    document = yaml.safe_load((REPO_ROOT / "Pulumi.dev.yaml").read_text())["config"]
    config = {key.split(":", 1)[1]: value for key, value in document.items()}
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({"hosts": inventory_hosts}))
    config["inventory"] = str(inventory)
    return config


@pytest.fixture
def unreachable_hosts(raw_config) -> list[dict]:
    """Lab-shaped hosts in TEST-NET-1, an address range that routes nowhere."""
    hosts = raw_config["hosts"]
    for index, host in enumerate(hosts):
        host["address"] = f"192.0.2.{11 + index}"
    return hosts


def test_preview_of_the_dev_stack_lists_its_resources_without_reaching_hosts(
    pulumi_project, unreachable_hosts, tmp_path
):
    config = dev_config(unreachable_hosts, tmp_path)
    config["network"] = {"subnet": "192.0.2.0/24"}
    pulumi_project.new_stack("dev", config)
    steps = pulumi_project.preview_steps()
    assert {step["op"] for step in steps} == {"create"}
    created = {(step["type"], step["name"]) for step in steps}
    node_steps = (
        "os-preflight", "system-packages", "firewall", "python-runtime", "python-env", "model-weights", "runtime-env"
    )  # fmt: skip
    assert created == {
        ("pulumi:pulumi:Stack", "ray-vllm-stack-dev"),
        ("ray-vllm-stack:index:ClusterSecrets", "cluster"),
        ("pulumi-python:dynamic:Resource", "cluster-ray-token"),
        ("pulumi-python:dynamic:Resource", "cluster-api-key"),
        # Each names its secret's rotation in a preview (`tools.review`), never its value.
        *(("pulumi-python:dynamic/secrets:SecretVersion", f"cluster-{key}-version") for key in ("ray-token", "api-key")),
        ("pulumi-python:dynamic/artifacts:PythonInterpreter", "python"),
        ("pulumi-python:dynamic/artifacts:Wheelhouse", "wheelhouse"),
        ("pulumi-python:dynamic/artifacts:ModelArtifact", "model"),
        ("pulumi-python:dynamic/artifacts:DebPackages", "debs-debian-12"),  # the lab's release, no route out
        *(("ray-vllm-stack:index:Node", node) for node in ("lab1", "lab2")),
        *(("pulumi-python:dynamic/hosts:HostFacts", f"{node}-facts") for node in ("lab1", "lab2")),
        *(
            ("pulumi-python:dynamic/provisioning:NodeStep", f"{node}-{step}")
            for node in ("lab1", "lab2")
            for step in node_steps
        ),
        ("ray-vllm-stack:index:Serving", "serving"),
        ("pulumi-python:dynamic/provisioning:ServingRelease", "serving-release"),
    }
    assert pulumi_project.resources() == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"parallelism": {"pipeline_size": 3}}, "parallelism: pipeline size 3 x tensor size 1 = 3 accelerators"),
        ({"ports": {"api": 6379}}, "ports.api: 6379 is also ports.gcs; give each service its own port"),
        ({"api_key": "sk-plain"}, "api_key: given in plain text; store it encrypted"),
        ({"model": {"path": "/nonexistent/model", "served_name": "x"}}, "model.path: /nonexistent/model is not"),
        ({"parallelism": {"pipeline_size": 2, "layer_partition": [1, 1]}}, "parallelism.layer_partition: sums to 2"),
        # Hostile input (the full corpus is tests/stack/test_hostile_configs.py): refused the same way.
        ({"model": {"path": "/nonexistent", "served_name": "../../../../opt"}}, "model.served_name: '../../../../opt'"),
        ({"network": {"env": {"RAY_AUTH_MODE": "disabled"}}}, "network.env.RAY_AUTH_MODE: is set by the stack"),
        ({"vllm": {"extra_args": ["--host", "0.0.0.0"]}}, "vllm.extra_args[0]: --host is set by the stack"),
        ({"vllm": {"extra_args": ["$(reboot)"]}}, "vllm.extra_args[0]: '$(reboot)' is not allowed"),
    ],
)
def test_bad_input_fails_with_its_message_and_changes_nothing(pulumi_project, raw_config, change, message):
    pulumi_project.new_stack("bad", {**raw_config, **change})
    result = pulumi_project.run("up", "--yes", check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert pulumi_project.resources() == []


def test_secret_config_is_accepted_and_never_stored_in_plain_text(pulumi_project, raw_config):
    pulumi_project.new_stack("secrets", raw_config)
    pulumi_project.run("config", "set", "--secret", "api_key", "sk-engine-test-key")
    pulumi_project.run("preview")
    stack_file = (pulumi_project.workdir / "Pulumi.secrets.yaml").read_text()
    assert "sk-engine-test-key" not in stack_file
    assert "secure:" in stack_file
