"""The two-GPU example stack (24 GB + 16 GB, a 32B 4-bit model) plans at preview without any host."""

import json
import re

import pytest
import yaml

from artifacts.paths import REPO_ROOT

pytestmark = pytest.mark.engine


def gpu_pair_config(tmp_path, ssh_key, memories=(24, 16)) -> dict:
    document = yaml.safe_load((REPO_ROOT / "Pulumi.gpu-pair.yaml").read_text())["config"]
    config = {key.split(":", 1)[1]: value for key, value in document.items()}
    hosts = yaml.safe_load((REPO_ROOT / "inventory/gpu-pair.yaml").read_text())["hosts"]
    for host, memory in zip(hosts, memories):
        host["ssh"]["key_file"] = str(ssh_key)  # the reviewer's key; the hosts are never contacted
        host["gpus"][0]["memory_gb"] = memory
    inventory = tmp_path / "gpu-pair.yaml"
    inventory.write_text(yaml.safe_dump({"hosts": hosts}))
    config["inventory"] = str(inventory)
    return config


def test_preview_plans_the_uneven_split(pulumi_project, tmp_path, ssh_key):
    pulumi_project.new_stack("gpu-pair", gpu_pair_config(tmp_path, ssh_key))
    preview = json.loads(pulumi_project.run("preview", "--json").stdout)
    names = {step["urn"].split("::")[-1] for step in preview["steps"]}
    assert {"gpu24-nvidia-preflight", "gpu16-nvidia-preflight", "serving-release"} <= names
    release = next(step for step in preview["steps"] if step["urn"].endswith("::serving-release"))
    assert release["op"] == "create"
    phases = release["newState"]["inputs"]["spec"]["phases"]
    assert [[(unit["host"], unit["role"]) for unit in phase] for phase in phases] == [
        [("gpu24", "ray-head")], [("gpu16", "ray-worker")], [("gpu24", "vllm")], [("gpu24", "api-front")]
    ]
    assert "--num-gpus=1" in phases[1][0]["service"]["unit_text"]
    # The seed's hosts: the `ubuntu` user through sudo, each held to its declared release, wheels
    # pulled from PyPI, system packages from its own apt (known at preview: no .debs to fetch).
    by_name = {step["urn"].split("::")[-1]: step["newState"].get("inputs", {}) for step in preview["steps"] if "newState" in step}
    assert by_name["gpu24-facts"]["host"]["user"] == "ubuntu" and by_name["gpu24-facts"]["host"]["sudo"] is True
    assert by_name["gpu16-os-preflight"]["spec"]["declared"] == "ubuntu-22.04"
    assert by_name["gpu24-system-packages"]["spec"] == {"packages": ["libnuma1", "nftables"]}
    assert not any(name.startswith("debs-") for name in names)  # so the controller never runs apt
    text = pulumi_project.run("preview").stdout
    partition = re.search(r"layer_partition: \[\s*\[0\]: (\d+)\s*\[1\]: (\d+)\s*\]", text)
    assert partition and partition.groups() == ("40", "24"), text
    assert re.search(r"max_model_len\s*: 32768", text), text
    assert pulumi_project.resources() == []


def test_a_model_that_does_not_fit_fails_preview_with_needed_vs_available(pulumi_project, tmp_path, ssh_key):
    pulumi_project.new_stack("too-small", gpu_pair_config(tmp_path, ssh_key, memories=(8, 8)))
    result = pulumi_project.run("preview", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "hosts[].gpus: the model does not fit" in output
    assert "GPU 0 (8 GB, stage 0" in output and "needs" in output and "has" in output
    assert "Traceback" not in output
