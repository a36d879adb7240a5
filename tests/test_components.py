"""Components under Pulumi's mocks: which children they declare, with what inputs and outputs."""

from pathlib import Path

import pulumi
import pytest

from components.validation import load_stack_config
from components.vllm_unit import ServingPlan

ROOT = Path(__file__).resolve().parent.parent


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self):
        self.resources: dict[str, dict] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources[args.name] = {"type": args.typ, "inputs": args.inputs}
        outputs = dict(args.inputs)
        if args.name.endswith(("-ray-token", "-api-key")):
            outputs["value"] = f"generated-{args.name}"
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


def unwrap_secret(value):
    """Mocks see a secret input in its wire form: {<signature>: <secret sig>, "value": ...}."""
    return value["value"] if isinstance(value, dict) and "value" in value and len(value) == 2 else value


@pytest.fixture
def mocks():
    recorder = RecordingMocks()
    pulumi.runtime.set_mocks(recorder, preview=False)
    return recorder


@pytest.fixture
def config(raw_config):
    return load_stack_config(raw_config, set(), ROOT)


@pulumi.runtime.test
def test_cluster_secrets_are_generated_and_secret(mocks):
    from components.secrets import ClusterSecrets, ClusterSecretsArgs

    secrets = ClusterSecrets("cluster", ClusterSecretsArgs(ray_token=None, api_key=None))

    def check(values):
        token, is_secret = values
        assert token == "generated-cluster-ray-token"
        assert is_secret
        assert {"cluster-ray-token", "cluster-api-key"} <= set(mocks.resources)

    return pulumi.Output.all(secrets.ray_token, pulumi.Output.is_secret(secrets.ray_token)).apply(check)


@pulumi.runtime.test
def test_ray_cluster_declares_head_then_workers_with_secret_specs(mocks, config):
    from components.hosts import host_key_policy
    from components.ray_cluster import RayCluster, RayClusterArgs

    cluster = RayCluster(
        "ray",
        RayClusterArgs(
            hosts=config.hosts, head=config.head, ports=config.ports, ray=config.ray, security=config.security,
            ray_token=pulumi.Output.secret("token-value"),
            host_keys={host.name: host_key_policy(host) for host in config.hosts},
        ),
    )  # fmt: skip

    def check(values):
        address, rules = values
        assert address == "10.201.0.11:6379"
        assert any(rule["purpose"] == "Ray GCS" for rule in rules)
        head, worker = mocks.resources["ray-lab1"]["inputs"], mocks.resources["ray-lab2"]["inputs"]
        assert (head["step"], worker["step"]) == ("ray-head", "ray-worker")
        assert unwrap_secret(head["spec"]) != head["spec"], "the spec holds the token: it must be a secret"
        spec = unwrap_secret(head["spec"])
        assert spec["unit"] == "rvs-ray-head.service"
        token_file = spec["files"][0]
        assert (token_file["path"], token_file["content"], token_file["mode"]) == (
            "/etc/ray-vllm-stack/ray_token", "token-value", "600",
        )

    registered = [node.id for node in cluster.ready]
    return pulumi.Output.all(cluster.address, cluster.required_ports, *registered).apply(lambda v: check(v[:2]))


@pulumi.runtime.test
def test_vllm_service_exposes_the_endpoint(mocks, config):
    from components.hosts import host_key_policy
    from components.vllm_service import VllmService, VllmServiceArgs

    service = VllmService(
        "vllm",
        VllmServiceArgs(
            config=config, plan=ServingPlan("/models/tiny", None, 1024), api_key=pulumi.Output.secret("sk-test"),
            host_keys=host_key_policy(config.head), after=[],
        ),
    )  # fmt: skip

    def check(values):
        endpoint, base_url = values
        assert endpoint == "http://10.201.0.11:8000"
        assert base_url == "http://10.201.0.11:8000/v1"
        spec = unwrap_secret(mocks.resources["vllm-server"]["inputs"]["spec"])
        assert spec["probe"][:3] == ["http", "--url", "http://10.201.0.11:8000"]
        assert "sk-test" in spec["files"][0]["content"] and spec["files"][0]["mode"] == "600"

    return pulumi.Output.all(service.endpoint_url, service.openai_base_url).apply(check)
