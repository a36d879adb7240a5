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
        token, is_secret, _api_key = values
        assert token == "generated-cluster-ray-token"
        assert is_secret
        assert {"cluster-ray-token", "cluster-api-key"} <= set(mocks.resources)

    # The API key among the awaited values: the check runs once both secrets are registered.
    return pulumi.Output.all(secrets.ray_token, pulumi.Output.is_secret(secrets.ray_token), secrets.api_key).apply(check)


VENV = "/opt/ray-vllm-stack/venvs/cpu-0123456789abcdef"


def serving(config, certificate=None):
    from components.serving import Serving, ServingArgs

    return Serving(
        "serving",
        ServingArgs(
            config=config, plan=ServingPlan("/models/tiny", None, 1024), venv=VENV,
            ray_token=pulumi.Output.secret("token-value"), api_key=pulumi.Output.secret("sk-test"),
            certificate=certificate,
        ),
    )  # fmt: skip


@pulumi.runtime.test
def test_serving_is_one_release_in_start_order_with_plain_specs_and_secret_files(mocks, config):
    service = serving(config)

    def check(values):
        address, rules, endpoint, base_url = values
        assert address == "10.201.0.11:6379"
        assert any(rule["purpose"] == "Ray GCS" for rule in rules)
        assert endpoint == "http://10.201.0.11:8000"
        assert base_url == "http://10.201.0.11:8000/v1"
        inputs = mocks.resources["serving-release"]["inputs"]
        spec = inputs["spec"]
        assert unwrap_secret(spec) == spec, "the spec is plain, so a preview shows what changes in it"
        order = [[(unit["host"], unit["role"], unit["service"]["unit"]) for unit in phase] for phase in spec["phases"]]
        assert order == [
            [("lab1", "ray-head", "rvs-ray-head.service")],
            [("lab2", "ray-worker", "rvs-ray-worker.service")],
            [("lab1", "vllm", "rvs-vllm.service")],
            [("lab1", "api-front", "rvs-api.service")],
        ]
        services = {unit["role"]: unit["service"] for phase in spec["phases"] for unit in phase}
        assert all(service["venv"] == VENV for service in services.values())
        assert services["ray-head"]["secret_files"] == [{"path": "/etc/ray-vllm-stack/secrets/ray_token", "mode": "600"}]
        assert services["vllm"]["probe"][:3] == ["http", "--url", "http://127.0.0.1:8001"]
        assert services["api-front"]["probe"][:3] == ["http", "--url", "http://10.201.0.11:8000"]
        assert "token-value" not in str(spec) and "sk-test" not in str(spec)
        assert unwrap_secret(inputs["secrets"]) != inputs["secrets"], "the secret files travel as a secret input"
        assert unwrap_secret(inputs["secrets"]) == {
            "/etc/ray-vllm-stack/secrets/ray_token": "token-value",
            "/etc/ray-vllm-stack/secrets/vllm.env": "VLLM_API_KEY=sk-test\n",
            "/etc/ray-vllm-stack/secrets/api_front.env": "VLLM_API_KEY=sk-test\n",
        }

    outputs = (service.ray_address, service.required_ports, service.endpoint_url, service.openai_base_url)
    return pulumi.Output.all(*outputs).apply(check)


@pulumi.runtime.test
def test_tls_front_gets_its_certificate_as_secret_files(mocks, raw_config):
    raw_config["security"] = {"tls": "self-signed"}
    config = load_stack_config(raw_config, set(), REPO_ROOT)
    service = serving(config, certificate=pulumi.Output.secret(["CERT", "KEY"]))

    def check(endpoint):
        assert endpoint == "https://10.201.0.11:8000"
        inputs = mocks.resources["serving-release"]["inputs"]
        front = inputs["spec"]["phases"][-1][0]["service"]
        assert "--pin-cert" in front["probe"] and "KEY" not in str(inputs["spec"])
        secrets = unwrap_secret(inputs["secrets"])
        assert {path: secrets[path] for path in secrets if "tls" in path} == {
            "/etc/ray-vllm-stack/secrets/tls.crt": "CERT",
            "/etc/ray-vllm-stack/secrets/tls.key": "KEY",
        }
        assert secrets != inputs["secrets"]

    return service.endpoint_url.apply(check)
