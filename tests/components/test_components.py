"""Components under Pulumi's mocks: which children they declare, with what inputs and outputs."""


import pulumi
import pytest

from artifacts.paths import REPO_ROOT
from stack.validation import load_stack_config
from stack.vllm_unit import ServingPlan


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
    return load_stack_config(raw_config, set(), REPO_ROOT)


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
def test_ray_cluster_declares_head_then_workers_with_plain_specs_and_secret_token(mocks, config):
    from components.ray_cluster import RayCluster, RayClusterArgs
    from stack.hosts import host_key_policy

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
        spec = head["spec"]
        assert unwrap_secret(spec) == spec, "the spec is plain, so a preview shows what changes in it"
        assert spec["unit"] == "rvs-ray-head.service"
        assert spec["secret_files"] == [{"path": "/etc/ray-vllm-stack/secrets/ray_token", "mode": "600"}]
        assert "token-value" not in str(spec)
        assert unwrap_secret(head["secrets"]) != head["secrets"], "the token travels as a secret input"
        assert unwrap_secret(head["secrets"]) == {"/etc/ray-vllm-stack/secrets/ray_token": "token-value"}

    registered = [node.id for node in cluster.ready]
    return pulumi.Output.all(cluster.address, cluster.required_ports, *registered).apply(lambda v: check(v[:2]))


@pulumi.runtime.test
def test_vllm_service_exposes_the_endpoint(mocks, config):
    from components.vllm_service import VllmService, VllmServiceArgs
    from stack.hosts import host_key_policy

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
        inputs = mocks.resources["vllm-server"]["inputs"]
        spec = inputs["spec"]
        assert unwrap_secret(spec) == spec and "sk-test" not in str(spec)
        assert spec["probe"][:3] == ["http", "--url", "http://127.0.0.1:8001"]
        front = mocks.resources["vllm-front"]["inputs"]
        assert front["spec"]["probe"][:3] == ["http", "--url", "http://10.201.0.11:8000"]
        assert unwrap_secret(front["secrets"]) == {"/etc/ray-vllm-stack/secrets/api_front.env": "VLLM_API_KEY=sk-test\n"}
        assert spec["secret_files"] == [{"path": "/etc/ray-vllm-stack/secrets/vllm.env", "mode": "600"}]
        assert unwrap_secret(inputs["secrets"]) == {"/etc/ray-vllm-stack/secrets/vllm.env": "VLLM_API_KEY=sk-test\n"}
        assert unwrap_secret(inputs["secrets"]) != inputs["secrets"]

    return pulumi.Output.all(service.endpoint_url, service.openai_base_url).apply(check)


@pulumi.runtime.test
def test_tls_front_gets_its_certificate_as_secret_files(mocks, raw_config):
    from components.vllm_service import VllmService, VllmServiceArgs
    from stack.hosts import host_key_policy

    raw_config["security"] = {"tls": "self-signed"}
    config = load_stack_config(raw_config, set(), REPO_ROOT)
    service = VllmService(
        "vllm",
        VllmServiceArgs(
            config=config, plan=ServingPlan("/models/tiny", None, 1024), api_key=pulumi.Output.secret("sk-test"),
            host_keys=host_key_policy(config.head), after=[], certificate=pulumi.Output.secret(["CERT", "KEY"]),
        ),
    )  # fmt: skip

    def check(endpoint):
        assert endpoint == "https://10.201.0.11:8000"
        front = mocks.resources["vllm-front"]["inputs"]
        assert "--pin-cert" in front["spec"]["probe"] and "KEY" not in str(front["spec"])
        assert unwrap_secret(front["secrets"]) == {
            "/etc/ray-vllm-stack/secrets/api_front.env": "VLLM_API_KEY=sk-test\n",
            "/etc/ray-vllm-stack/secrets/tls.crt": "CERT",
            "/etc/ray-vllm-stack/secrets/tls.key": "KEY",
        }
        assert unwrap_secret(front["secrets"]) != front["secrets"]

    return service.endpoint_url.apply(check)
