"""`pulumi preview --policy-pack policy` with the project's CLI, offline, on the gpu-pair example: the
shipped stack passes; each violation a config can make fails the preview naming its policy, after the
same stack without it passed (the positive control)."""

import pytest
import yaml

from artifacts.paths import REPO_ROOT
from tests.program.test_gpu_stack_engine import gpu_pair_config

pytestmark = pytest.mark.engine

POLICY_PACK = REPO_ROOT / "policy"
RULE_NAMES = ("ray-token-auth", "api-not-open-without-tls", "model-revision-pinned", "host-keys-verified", "firewall-on")


def preview_with_pack(project) -> tuple[int, str]:
    result = project.run("preview", "--policy-pack", str(POLICY_PACK), check=False)
    return result.returncode, result.stdout + result.stderr


def test_the_shipped_stack_passes_every_policy(pulumi_project, tmp_path, ssh_key):
    pulumi_project.new_stack("gpu-pair", gpu_pair_config(tmp_path, ssh_key))
    status, output = preview_with_pack(pulumi_project)
    assert status == 0, output
    assert "Loading policy packs...: done" in output
    assert not any(name in output for name in RULE_NAMES), output


def unverified_host_keys(config: dict) -> None:
    inventory = yaml.safe_load(open(config["inventory"]))
    for host in inventory["hosts"]:
        host["ssh"]["host_keys"] = "ignore"
    with open(config["inventory"], "w") as file:
        yaml.safe_dump(inventory, file)
    config["security"] = {"allow_unverified_host_keys": True}  # the config allows it; the policy does not


@pytest.mark.parametrize(
    ("policy", "violate", "message"),
    [
        ("api-not-open-without-tls", lambda config: config.update(security={"api_bind": "all"}),
         "the API on gpu24 listens on every interface (0.0.0.0:8000) without TLS"),
        ("firewall-on", lambda config: config.update(security={"firewall": False}), "gpu16 has no host firewall"),
        ("host-keys-verified", unverified_host_keys,
         "192.168.50.12 is not a lab host but its SSH host key is not checked"),
    ],
)  # fmt: skip
def test_a_violation_fails_preview_naming_its_policy(pulumi_project, tmp_path, ssh_key, policy, violate, message):
    config = gpu_pair_config(tmp_path, ssh_key)
    pulumi_project.new_stack("gpu-pair", config)
    status, output = preview_with_pack(pulumi_project)
    assert status == 0 and policy not in output, output  # positive control: the same stack, compliant
    violate(config)
    pulumi_project.new_stack("violating", config)
    status, output = preview_with_pack(pulumi_project)
    assert status != 0, output
    assert f"[mandatory]  {policy}" in output and message in output, output
    assert [name for name in RULE_NAMES if name in output] == [policy], output
