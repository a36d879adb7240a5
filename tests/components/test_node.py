"""The Node component under Pulumi mocks: its children, their order, their inputs and outputs."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv4Network

import pulumi
import pytest
from pulumi.runtime.mocks import MockMonitor

from artifacts import manifest as manifests
from artifacts.debs import Mirrors
from components.artifacts import DebPackages, ModelArtifact, PythonInterpreter, Wheelhouse
from components.node import Node, NodeArgs
from deploys.runner import HostKeyPolicy
from stack.config import HostConfig, NetworkConfig, Ports, RaySettings, SecurityConfig
from stack.firewall import FirewallPolicy, port_rules
from stack.node_steps import SYSTEM_PACKAGES, NodeInputs, stack_venv, steps_for

MODEL_MANIFEST = manifests.render({"config.json": "a" * 64, "model.safetensors": "b" * 64})
PYTHON_MANIFEST = manifests.render({"bin/python3.11": "9" * 64})
OBSERVED = {
    "facts": {"python": "3.11.2", "cpus": 2, "nvidia": None},
    "os-preflight": {"os_id": "debian", "os_version": "12", "arch": "x86_64"},
    "nvidia-preflight": {"driver": "580.82.07", "cuda": "13.0", "gpus": []},
    "system-packages": {"missing": []},
    "python-runtime": {"version": "3.11.2", "build": "8" * 64, "failed": [], "glibc": "2.36"},
    "python-env": {"lock": "cpu-k", "packages_digest": "c" * 64},
    "model-weights": {"manifest_digest": manifests.manifest_digest(manifests.parse(MODEL_MANIFEST)), "failed": []},
    "runtime-env": {"env": {"GLOO_SOCKET_IFNAME": "eth0", "VLLM_HOST_IP": "10.201.0.11"}, "sha256": "d" * 64},
    "firewall": {"active": True, "enabled": True, "files": "1" * 64, "table": "2" * 64},
}
ARTIFACT_OUTPUTS = {
    "PythonInterpreter": {
        "path": "/c/.cache/python/3.11.2-k/tree", "key": "3.11.2-k", "version": "3.11.2", "glibc_floor": "2.34",
        "libraries": ["libssl.so.3"], "manifest": PYTHON_MANIFEST, "manifest_digest": "8" * 64, "total_bytes": 3,
    },
    "Wheelhouse": {
        "path": "/c/.cache/wheelhouse/cpu-k", "key": "cpu-k", "lock_file": "requirements.lock", "installer": "installer/uv",
        "plugin_wheels": ["plugins/p/vllm_ray_cpu-0.1.0-py3-none-any.whl"], "packages": ["ray", "vllm-ray-cpu"],
        "manifest": manifests.render({"ray-2.60.0.whl": "e" * 64}), "manifest_digest": "f" * 64, "total_bytes": 10,
    },
    "ModelArtifact": {"local_path": "/c/model", "manifest": MODEL_MANIFEST, "manifest_digest": "0" * 64, "total_bytes": 2},
    "DebPackages": {
        "release": "debian-12", "debs_dir": "/c/.cache/debs/debian-12/pool", "packages": ["libnuma1"],
        "debs": {"libnuma1": {"file": "libnuma1_2.0.16-1_amd64.deb", "version": "2.0.16-1", "depends": []}},
    },
}  # fmt: skip


class RecordingMonitor(MockMonitor):
    """Also records each resource's parent and dependencies (MockResourceArgs has neither)."""

    def __init__(self, mocks):
        super().__init__(mocks)
        self.registrations: dict[str, dict] = {}

    def RegisterResource(self, request):
        self.registrations[request.name] = {"parent": request.parent, "dependencies": list(request.dependencies)}
        return super().RegisterResource(request)


class StackMocks(pulumi.runtime.Mocks):
    def __init__(self):
        self.inputs: dict[str, dict] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.inputs[args.name] = args.inputs
        kind = args.typ.rsplit(":", 1)[-1]
        if kind in ARTIFACT_OUTPUTS:
            return f"{args.name}-id", {**args.inputs, **ARTIFACT_OUTPUTS[kind]}
        if kind in ("NodeStep", "HostFacts"):
            observed = OBSERVED[args.inputs["step"]]
            return f"{args.name}-id", {**args.inputs, "observed": observed, "applied": observed, "pushed_bytes": 5}
        return f"{args.name}-id", args.inputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


@pytest.fixture
def mocks():
    mocks = StackMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, preview=False, monitor=monitor)
    mocks.monitor = monitor
    return mocks


def host(name="lab1", accelerator="cpu", tmp_key="/dev/null", route_out=False):
    gpus = [{"memory_gb": 24}] if accelerator == "nvidia" else []
    return HostConfig(
        name=name, address="10.201.0.11", ssh={"key_file": tmp_key}, role="head", accelerator=accelerator, gpus=gpus,
        os="debian-12", route_out=route_out,
    )  # fmt: skip


def node_args(tmp_path, accelerator="cpu") -> NodeArgs:
    (tmp_path / "config.json").write_text("{}")
    return NodeArgs(
        inputs=NodeInputs(host(accelerator=accelerator), NetworkConfig(nccl_ib_disable=True), "tiny-qwen2"),
        python=PythonInterpreter("python", "/opt/ray-vllm-stack/python/3.11.2", "/c/Python-3.11.2.tgz", "7" * 64),
        wheelhouse=Wheelhouse(f"wheelhouse-{accelerator}", accelerator),
        model=ModelArtifact("model", path=str(tmp_path)),
        debs=DebPackages("debs-debian-12", ["libnuma1"], "debian-12", Mirrors()),
        host_keys=HostKeyPolicy(),
    )


CPU_STEPS = ["os-preflight", "system-packages", "python-runtime", "python-env", "model-weights", "runtime-env"]


CPU_STEPS_AFTER = {
    "os-preflight": ["facts"],
    "system-packages": ["os-preflight"],
    "python-runtime": ["system-packages"],
    "python-env": ["python-runtime"],
    "model-weights": ["python-runtime"],  # in parallel with python-env
    "runtime-env": ["python-env", "model-weights"],
}


@pulumi.runtime.test
def test_cpu_node_orders_its_steps(mocks, tmp_path):
    node = Node("lab1", node_args(tmp_path))

    def check(_):
        registrations = mocks.monitor.registrations
        assert [name for name in registrations if name.startswith("lab1-")] == [f"lab1-{s}" for s in ["facts", *CPU_STEPS]]
        assert CPU_STEPS == [step.name for step in steps_for(node_args(tmp_path).inputs)]  # the one table
        for step, after in CPU_STEPS_AFTER.items():
            dependencies = {dep.split("::")[-1] for dep in registrations[f"lab1-{step}"]["dependencies"]}
            assert {dep for dep in dependencies if dep.startswith("lab1-")} == {f"lab1-{name}" for name in after}, step
            assert registrations[f"lab1-{step}"]["parent"].endswith("ray-vllm-stack:index:Node::lab1")
        assert "lab1-nvidia-preflight" not in registrations

    return node.pushed_bytes.apply(check)  # resolves once every step is registered


@pulumi.runtime.test
def test_step_inputs_carry_the_desired_state(mocks, tmp_path):
    node = Node("lab1", node_args(tmp_path))

    def check(_):
        env = mocks.inputs["lab1-python-env"]["spec"]
        assert env["wheelhouse"]["destination"] == "/var/cache/ray-vllm-stack/wheelhouse/cpu-k"
        assert env["wheelhouse"]["verify_content"] is False
        assert env["plugin_wheels"] == ["plugins/p/vllm_ray_cpu-0.1.0-py3-none-any.whl"]
        weights = mocks.inputs["lab1-model-weights"]["spec"]
        assert weights["tree"] == {
            "source": "/c/model", "destination": "/var/lib/ray-vllm-stack/models/tiny-qwen2",
            "manifest": MODEL_MANIFEST, "verify_content": True,
        }  # fmt: skip
        assert mocks.inputs["lab1-runtime-env"]["spec"]["address"] == "10.201.0.11"
        assert mocks.inputs["lab1-python-runtime"]["spec"] == {
            "version": "3.11.2", "glibc_floor": "2.34",
            "tree": {"source": "/c/.cache/python/3.11.2-k/tree", "destination": "/opt/ray-vllm-stack/python/3.11.2",
                     "manifest": PYTHON_MANIFEST, "verify_content": True},
        }  # fmt: skip
        assert env["interpreter"] == "/opt/ray-vllm-stack/python/3.11.2/bin/python3"
        assert mocks.inputs["python"]["build_key"].startswith("3.11.2-")  # known at preview: a new recipe diffs
        assert len(mocks.inputs["lab1-python-env"]["code"]) == 64

    return node.pushed_bytes.apply(check)  # resolves once every step is registered


@pulumi.runtime.test
def test_outputs(mocks, tmp_path):
    node = Node("lab1", node_args(tmp_path))

    def check(values):
        fingerprint, runtime_env, venv, model_path, pushed = values
        assert fingerprint == {
            "python": "3.11.2", "python_build": "8" * 64, "packages": "c" * 64,
            "weights": OBSERVED["model-weights"]["manifest_digest"], "driver": None, "cuda": None,
        }  # fmt: skip
        assert runtime_env == OBSERVED["runtime-env"]["env"]
        assert venv == stack_venv("cpu")
        assert model_path == "/var/lib/ray-vllm-stack/models/tiny-qwen2"
        assert pushed == 5 * (1 + len(CPU_STEPS))  # 5 from the facts and from each step

    return pulumi.Output.all(node.fingerprint, node.runtime_env, node.venv_path, node.model_path, node.pushed_bytes).apply(
        check
    )


@pulumi.runtime.test
def test_firewall_comes_right_after_the_system_packages(mocks, tmp_path):
    args = node_args(tmp_path)
    head = IPv4Address("10.201.0.11")
    policy = FirewallPolicy(
        members=(head, IPv4Address("10.201.0.12")), head=head, rules=port_rules(Ports(), SecurityConfig(), RaySettings()),
        api_allow_from=(IPv4Network("0.0.0.0/0"),), ray_clients_from=(),
    )  # fmt: skip
    args.inputs = dataclasses.replace(args.inputs, firewall=policy)
    node = Node("lab1", args)

    def check(_):
        registrations = mocks.monitor.registrations

        def after(step: str) -> set[str]:
            dependencies = {dep.split("::")[-1] for dep in registrations[f"lab1-{step}"]["dependencies"]}
            return {dep for dep in dependencies if dep.startswith("lab1-")}

        assert after("firewall") == {"lab1-system-packages"} and after("python-runtime") == {"lab1-firewall"}
        spec = mocks.inputs["lab1-firewall"]["spec"]  # plain: a preview shows the rule that changes
        assert spec["rules"].startswith("# ray-vllm-stack's host firewall for lab1 (head)")
        assert "tcp dport { 8000 } ip saddr @api_consumers accept" in spec["rules"]

    return node.pushed_bytes.apply(check)  # resolves once every step is registered


@pulumi.runtime.test
def test_nvidia_node_starts_with_the_preflights(mocks, tmp_path):
    node = Node("lab1", node_args(tmp_path, accelerator="nvidia"))

    def check(_):
        registrations = mocks.monitor.registrations
        preflight = mocks.inputs["lab1-nvidia-preflight"]["spec"]
        assert preflight == {"min_driver": "580.65.06", "cuda": "13.0"}  # None values are not sent
        assert mocks.inputs["lab1-os-preflight"]["spec"] == {
            "supported": ["debian-12", "debian-13", "ubuntu-22.04", "ubuntu-24.04"],
            "arches": ["x86_64"],
            "declared": "debian-12",
        }
        preflight_after = registrations["lab1-nvidia-preflight"]["dependencies"]
        assert any(dep.endswith("::lab1-os-preflight") for dep in preflight_after)
        assert any(dep.endswith("::lab1-nvidia-preflight") for dep in registrations["lab1-system-packages"]["dependencies"])

    return node.pushed_bytes.apply(check)  # resolves once every step is registered


def test_flavor_mismatch_is_refused(mocks, tmp_path):
    args = node_args(tmp_path)
    args.inputs = NodeInputs(host(accelerator="nvidia"), NetworkConfig(), "tiny-qwen2")
    with pytest.raises(ValueError, match="lab1 is `nvidia` but was given the cpu wheelhouse"):
        Node("lab1", args)


@pulumi.runtime.test
def test_pushed_debs_are_the_hosts_release_and_a_host_with_a_route_out_gets_none(mocks, tmp_path):
    pushed = node_args(tmp_path)
    Node("lab1", pushed)
    pulled = node_args(tmp_path)
    pulled.inputs = NodeInputs(host("lab2", route_out=True), NetworkConfig(), "tiny-qwen2")
    pulled.debs = None
    node = Node("lab2", pulled)

    def check(_):
        spec = mocks.inputs["lab1-system-packages"]["spec"]
        assert spec["release"] == "debian-12" and spec["debs_dir"] == "/c/.cache/debs/debian-12/pool"
        assert list(spec["debs"]) == ["libnuma1"]
        assert mocks.inputs["debs-debian-12"]["mirrors"]["debian_mirror"] == "http://deb.debian.org/debian"
        # A route out: the packages by name, for the node's own sources; no .debs.
        assert mocks.inputs["lab2-system-packages"]["spec"] == {"packages": list(SYSTEM_PACKAGES)}

    return node.pushed_bytes.apply(check)


def test_debs_of_another_release_or_none_are_refused(mocks, tmp_path):
    args = node_args(tmp_path)
    args.debs = DebPackages("debs-debian-13", ["libnuma1"], "debian-13", Mirrors())
    with pytest.raises(ValueError, match="lab1 needs the .debs of debian-12, was given debian-13"):
        Node("lab1", args)
    args.debs = None
    with pytest.raises(ValueError, match="lab1 needs the .debs of debian-12, was given none"):
        Node("lab1", args)
    args.inputs = NodeInputs(host(route_out=True), NetworkConfig(), "tiny-qwen2")
    Node("lab1", args)  # positive control: a host with a route out needs none
