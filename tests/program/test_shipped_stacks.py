"""Every stack file the repository ships opens in a fresh clone: no `encryptionsalt` made with a
passphrase only its author had, so `pulumi stack init` with this checkout's own passphrase works."""

import secrets
import shutil
import subprocess

import pytest
import yaml

from artifacts.paths import REPO_ROOT

pytestmark = pytest.mark.engine


def shipped_stack_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "Pulumi.*.yaml"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return listed.stdout.split()


def test_the_repository_ships_the_dev_and_gpu_pair_stacks():
    assert {"Pulumi.dev.yaml", "Pulumi.gpu-pair.yaml"} <= set(shipped_stack_files())


@pytest.mark.parametrize("stack_file", shipped_stack_files())
def test_a_fresh_checkout_opens_the_stack_with_its_own_passphrase(pulumi_project, stack_file):
    committed = subprocess.run(["git", "show", f"HEAD:{stack_file}"], cwd=REPO_ROOT, capture_output=True, text=True)
    text = committed.stdout if committed.returncode == 0 else (REPO_ROOT / stack_file).read_text()
    assert "encryptionsalt" not in yaml.safe_load(text), f"{stack_file} commits an encryptionsalt"
    name = stack_file.removeprefix("Pulumi.").removesuffix(".yaml")
    shutil.copy(REPO_ROOT / stack_file, pulumi_project.workdir / stack_file)
    pulumi_project.env["PULUMI_CONFIG_PASSPHRASE"] = secrets.token_urlsafe(24)  # this checkout's own
    pulumi_project.run("stack", "init", name)
    # The secrets manager works: a secret goes in encrypted and comes back out.
    pulumi_project.run("config", "set", "--secret", "probe_secret", "s3cr3t-value")
    assert pulumi_project.run("config", "get", "probe_secret").stdout.strip() == "s3cr3t-value"
    written = yaml.safe_load((pulumi_project.workdir / stack_file).read_text())
    assert written["encryptionsalt"].startswith("v1:") and "s3cr3t-value" not in str(written)
    # Positive control for the failure this guards against: another passphrase cannot open it.
    pulumi_project.env["PULUMI_CONFIG_PASSPHRASE"] = "someone-elses-passphrase"
    refused = pulumi_project.run("config", "get", "probe_secret", check=False)
    assert refused.returncode != 0 and "incorrect passphrase" in refused.stderr
