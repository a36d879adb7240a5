"""Provisioning against two lab hosts, step by step the way `pulumi up` and `pulumi refresh` call
the providers: provision, identical fingerprints, a no-op second run, each drift found by a
refresh and repaired by the next apply on that node only, an unreachable host, a checksum
mismatch, the OS preflight against a declared release, the NVIDIA preflight on a CPU host, and
faults in the middle of a step (a cut link during the weight push, a disk that fills during an
install), each ending with the node as it should be."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from artifacts import manifest as manifests
from components.provisioning import StepError, apply_step, observe_step, step_changes, step_inputs
from deploys.layout import PYTHON_PREFIX
from deploys.platforms import PLATFORM_KEYS
from stack.config import HostConfig, NetworkConfig
from stack.fingerprint import fingerprint, mismatches
from stack.hosts import host_key_policy, ssh_target
from stack.node_steps import NodeInputs, nvidia_spec, platform_spec, stack_venv, steps_for
from tests.support.lab_nodes import EXTRA_PACKAGE, reset_provisioning, run_on

pytestmark = pytest.mark.lab

STEPS = ("facts", "os-preflight", "system-packages", "python-runtime", "python-env", "model-weights", "runtime-env")
"""The host's facts, then a CPU host's steps of `stack.node_steps.NODE_STEPS` in order."""


def inputs(host, node_specs_on_lab, step: str) -> dict:
    spec = node_specs_on_lab[host.name][step].model_dump(mode="json") if step != "facts" else None
    return step_inputs(step, ssh_target(host), spec, host_key_policy(host))


def provision(hosts, node_specs_on_lab) -> dict[str, dict[str, dict]]:
    """Every step in order, hosts in parallel: {host: {step: outputs}}."""

    def one_node(host):
        return {step: apply_step(inputs(host, node_specs_on_lab, step)) for step in STEPS}

    with ThreadPoolExecutor(len(hosts)) as pool:
        return dict(zip([host.name for host in hosts], pool.map(one_node, hosts)))


def node_fingerprint(outputs: dict[str, dict]) -> dict:
    return fingerprint(*(outputs[step]["observed"] for step in ("python-runtime", "python-env", "model-weights", "facts")))


@pytest.fixture(scope="module")
def provisioned(lab_nodes, node_specs_on_lab):
    reset_provisioning(lab_nodes)
    started = time.monotonic()
    outputs = provision(lab_nodes, node_specs_on_lab)
    outputs["_seconds"] = time.monotonic() - started
    return outputs


def test_first_provision(lab_nodes, provisioned):
    for host in lab_nodes:
        assert list(STEPS[1:]) == [step.name for step in steps_for(NodeInputs(host, NetworkConfig(), "tiny-qwen2"))]  # the one table, in order
        steps = provisioned[host.name]
        assert steps["system-packages"]["changed"] and steps["system-packages"]["observed"] == {"missing": []}
        assert steps["python-env"]["observed"]["lock"].startswith("small-")
        assert steps["model-weights"]["observed"]["failed"] == []
        assert steps["runtime-env"]["observed"]["env"] == {
            "GLOO_SOCKET_IFNAME": "eth0", "NCCL_SOCKET_IFNAME": "eth0",
            "VLLM_HOST_IP": str(host.address), "NCCL_IB_DISABLE": "1",
        }  # fmt: skip
        pushed = sum(output["pushed_bytes"] for output in steps.values())
        print(f"{host.name}: first provision pushed {pushed} bytes in {provisioned['_seconds']:.1f} s (2 nodes)")
        assert pushed > 7_000_000  # the tiny model, the wheels, the .debs of the extra package


def test_fingerprints_are_equal(lab_nodes, provisioned):
    fingerprints = {host.name: node_fingerprint(provisioned[host.name]) for host in lab_nodes}
    assert mismatches(fingerprints) == []
    assert fingerprints["lab1"]["python"] == "3.11.2" and fingerprints["lab1"]["packages"]
    assert fingerprints["lab1"]["python_build"]  # the digest of the interpreter tree each node holds


def test_nothing_changed_means_no_diff_and_no_change_on_hosts(lab_nodes, node_specs_on_lab, provisioned):
    for host in lab_nodes:
        for step in STEPS:
            assert step_changes(provisioned[host.name][step], inputs(host, node_specs_on_lab, step)) == ([], []), (host.name, step)
    started = time.monotonic()
    again = provision(lab_nodes, node_specs_on_lab)
    print(f"re-applying every step on 2 nodes: {time.monotonic() - started:.1f} s, nothing changed")
    for host in lab_nodes:
        for step in STEPS:
            assert not again[host.name][step]["changed"], (host.name, step)
            assert again[host.name][step]["pushed_bytes"] == 0
            assert again[host.name][step]["observed"] == provisioned[host.name][step]["observed"]


DRIFTS = {
    "a package changed": ("python-env", f"{stack_venv('cpu')}/bin/python -m pip uninstall --yes --quiet six"),
    "a weight file altered": ("model-weights", "echo tampered >> /var/lib/ray-vllm-stack/models/tiny-qwen2/config.json"),
    "a weight file removed": ("model-weights", "rm /var/lib/ray-vllm-stack/models/tiny-qwen2/tokenizer.json"),
    "the env file edited": ("runtime-env", "echo NCCL_DEBUG=INFO >> /etc/ray-vllm-stack/node.env"),
    "a system package removed": ("system-packages", f"dpkg -r {EXTRA_PACKAGE} >/dev/null"),
    "an interpreter file altered": ("python-runtime", f"echo '# tampered' >> {PYTHON_PREFIX}/lib/python3.11/os.py"),
}


@pytest.mark.parametrize("drift", list(DRIFTS))
def test_refresh_detects_drift_and_the_next_apply_repairs_only_that(lab_nodes, node_specs_on_lab, provisioned, drift):
    step, tamper = DRIFTS[drift]
    lab1, lab2 = lab_nodes
    before = provisioned["lab2"][step]
    run_on("lab2", tamper)

    refreshed = observe_step(before)  # what `pulumi refresh` records
    assert refreshed["observed"] != before["applied"]
    assert step_changes(refreshed, inputs(lab2, node_specs_on_lab, step)) == (["observed"], [])
    untouched = observe_step(provisioned["lab1"][step])
    assert step_changes(untouched, inputs(lab1, node_specs_on_lab, step)) == ([], [])

    repaired = apply_step(inputs(lab2, node_specs_on_lab, step))  # what the next `pulumi up` runs
    assert repaired["changed"] and repaired["observed"] == before["applied"]
    assert step_changes(repaired, inputs(lab2, node_specs_on_lab, step)) == ([], [])
    if step == "model-weights":
        sizes = {"a weight file altered": 563, "a weight file removed": 267_600}
        assert sizes[drift] <= repaired["pushed_bytes"] < sizes[drift] + 20_000  # that file (and the manifest) only


def test_unreachable_host_is_named_and_the_rerun_converges(lab_nodes, node_specs_on_lab, provisioned):
    from lab import api

    lab1, lab2 = lab_nodes
    run_on("lab1", "rm /etc/ray-vllm-stack/node.env")
    run_on("lab2", "rm /etc/ray-vllm-stack/node.env")
    api.isolate("lab2")
    try:
        with ThreadPoolExecutor(2) as pool:
            attempts = [pool.submit(apply_step, inputs(host, node_specs_on_lab, "runtime-env")) for host in lab_nodes]
        assert attempts[0].result()["changed"]  # lab1 keeps its progress
        with pytest.raises(StepError) as failed:
            attempts[1].result()
        assert str(failed.value).startswith("runtime-env on lab2: cannot connect over SSH to rvs@10.201.0.12:22")
    finally:
        api.reconnect("lab2")
    rerun = {host.name: apply_step(inputs(host, node_specs_on_lab, "runtime-env")) for host in lab_nodes}
    assert not rerun["lab1"]["changed"] and rerun["lab2"]["changed"]
    assert rerun["lab2"]["observed"] == provisioned["lab2"]["runtime-env"]["applied"]


def test_checksum_mismatch_names_file_and_node(lab_nodes, node_specs_on_lab, tmp_path):
    lab2 = lab_nodes[1]
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\1" * 1000)
    (model / "config.json").write_text("{}")
    manifest = manifests.build_manifest(model)
    (model / "weights.bin").write_bytes(b"\2" * 1000)  # the cache changed after its manifest was taken
    spec = node_specs_on_lab["lab2"]["model-weights"].model_dump(mode="json")
    spec["tree"].update(source=str(model), destination="/var/lib/ray-vllm-stack/models/checksum-test",
                        manifest=manifests.render(manifest))  # fmt: skip
    spec["keep_previous"] = 5
    try:
        with pytest.raises(StepError) as failed:
            apply_step(step_inputs("model-weights", ssh_target(lab2), spec, host_key_policy(lab2)))
        message = str(failed.value)
        assert message.startswith("model-weights on lab2: ")
        assert "checksum mismatch in /var/lib/ray-vllm-stack/models/checksum-test: weights.bin" in message
    finally:
        run_on("lab2", "rm -rf /var/lib/ray-vllm-stack/models/checksum-test")


def test_os_preflight_holds_a_lab_host_to_its_declared_release(lab_nodes):
    """Declared as what it runs, the host passes; declared as another release, it fails naming both."""
    found = run_on("lab1", ". /etc/os-release && echo $ID-$VERSION_ID").strip()
    other = next(key for key in PLATFORM_KEYS if key != found)
    for declared in (found, other):
        lab1 = HostConfig.model_validate({**lab_nodes[0].model_dump(), "os": declared})
        spec = platform_spec(NodeInputs(lab1, NetworkConfig(), "tiny-qwen2")).model_dump(mode="json")
        step = step_inputs("os-preflight", ssh_target(lab1), spec, host_key_policy(lab1))
        if declared == found:
            assert apply_step(step)["observed"]["arch"] == "x86_64"
            continue
        with pytest.raises(StepError) as failed:
            apply_step(step)
        assert str(failed.value).startswith(
            f"os-preflight on lab1: os preflight failed: the inventory declares os: {other}, but the node runs "
        )


def test_nvidia_preflight_fails_on_a_lab_host_before_any_change(lab_nodes):
    lab1 = HostConfig.model_validate({**lab_nodes[0].model_dump(), "accelerator": "nvidia", "gpus": [{"memory_gb": 24}]})
    before = run_on("lab1", "find /opt /var/cache /var/lib /etc -newer /etc/hostname 2>/dev/null | md5sum")
    with pytest.raises(StepError) as failed:
        spec = nvidia_spec(NodeInputs(lab1, NetworkConfig(), "tiny-qwen2")).model_dump(mode="json")
        apply_step(step_inputs("nvidia-preflight", ssh_target(lab1), spec, host_key_policy(lab1)))
    assert str(failed.value) == (
        "nvidia-preflight on lab1: nvidia preflight failed: nvidia-smi not found; "
        "install the NVIDIA driver >= 580.65.06 (or set accelerator: cpu)"
    )
    assert run_on("lab1", "find /opt /var/cache /var/lib /etc -newer /etc/hostname 2>/dev/null | md5sum") == before


def _once_bytes_arrive(destination: str, fault) -> None:
    """Waits (bounded) until the push has put bytes at `destination` on lab2, then strikes."""
    deadline = time.monotonic() + 120
    while int(run_on("lab2", f"du -sb {destination} 2>/dev/null | cut -f1 || echo 0").strip() or 0) < 1 << 20:
        assert time.monotonic() < deadline, "the push never started"
        time.sleep(0.2)
    fault("lab2")


FAULTS = {"link cut": ("isolate", "reconnect"), "host crash": ("crash", "start")}
"""A fault in the middle of a push, as `lab.api` strikes it, and what undoes it (cable back, power on)."""


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_during_the_weight_push_fails_naming_the_node_and_the_rerun_completes(
    lab_nodes, node_specs_on_lab, tmp_path, fault
):
    """The push is slowed to 80 Mbit/s on lab2's link (tc) so the fault lands in its middle: the link
    is cut (keepalives end the stalled stream) or the host dies (its disk stays). The step fails
    naming node and step, and once the host is back the next apply sends what is missing and checks
    every file."""
    import subprocess

    from lab import api

    strike, undo = (getattr(api, name) for name in FAULTS[fault])
    lab2 = lab_nodes[1]
    link = next(host.link for host in api.hosts() if host.name == "lab2")
    model = tmp_path / "model"
    model.mkdir()
    for index in range(4):
        (model / f"model-{index}.safetensors").write_bytes(os.urandom(25 << 20))
    (model / "config.json").write_text("{}")
    destination = "/var/lib/ray-vllm-stack/models/push-fault-test"
    spec = node_specs_on_lab["lab2"]["model-weights"].model_dump(mode="json")
    spec["tree"].update(source=str(model), destination=destination, manifest=manifests.render(manifests.build_manifest(model)))
    spec["keep_previous"] = 5
    step = step_inputs("model-weights", ssh_target(lab2), spec, host_key_policy(lab2))
    slow = ["tc", "qdisc", "add", "dev", link, "root", "tbf", "rate", "80mbit", "burst", "64kb", "latency", "400ms"]
    subprocess.run(slow, check=True, timeout=30)
    try:
        with ThreadPoolExecutor(1) as pool:
            push = pool.submit(apply_step, step)
            _once_bytes_arrive(destination, strike)
            started = time.monotonic()
            with pytest.raises(StepError) as failed:
                push.result(timeout=600)
        print(f"{fault} ended the push after {time.monotonic() - started:.0f} s: {str(failed.value)[:200]}")
        assert str(failed.value).startswith("model-weights on lab2: ")
        undo("lab2")
        subprocess.run(["tc", "qdisc", "del", "dev", link, "root"], timeout=30)  # a rebooted host's link is new
        done = apply_step(step)  # the control: with the host back, the same step completes, verified
        assert done["changed"] and 0 < done["pushed_bytes"]
        run_on("lab2", f"cd {destination} && sha256sum --quiet -c MANIFEST.sha256")
    finally:
        undo("lab2")
        subprocess.run(["tc", "qdisc", "del", "dev", link, "root"], timeout=30, capture_output=True)
        run_on("lab2", f"rm -rf {destination}")


def test_a_disk_that_fills_during_an_install_fails_clearly_and_the_rerun_completes(lab_nodes, node_specs_on_lab, provisioned):
    """The venvs' disk is a 4 MiB tmpfs on lab2 while the package set installs: the step fails with
    the node's own words; with room made, the next apply finishes the half-made venv and the node
    is exactly as provisioned."""
    venvs = stack_venv("cpu").rsplit("/", 1)[0]
    lab2 = lab_nodes[1]
    step = inputs(lab2, node_specs_on_lab, "python-env")
    run_on("lab2", f"mount -t tmpfs -o size=4m rvs-full-disk-test {venvs}")
    try:
        with pytest.raises(StepError) as failed:
            apply_step(step)
        message = str(failed.value)
        assert message.startswith("python-env on lab2: ") and "No space left on device" in message, message[-2000:]
        run_on("lab2", f"mount -o remount,size=2g {venvs}")  # room made
        repaired = apply_step(step)
        assert repaired["changed"] and repaired["observed"] == provisioned["lab2"]["python-env"]["observed"]
    finally:
        run_on("lab2", f"umount {venvs} 2>/dev/null || true")
