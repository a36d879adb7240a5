"""The main job on two lab hosts: Ray head + worker and vLLM with pipeline parallelism 2."""

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import yaml

from lab import api
from stack.node_steps import NodeInputs, stack_venv
from tests.support.lab_nodes import TINY_MODEL
from tools.availability import OutageMeter
from tools.chat import chat

pytestmark = [pytest.mark.lab, pytest.mark.engine]

VENV_PYTHON = f"{stack_venv('cpu')}/bin/python"
SERVING_UNITS = [("lab1", "rvs-ray-head.service"), ("lab2", "rvs-ray-worker.service"), ("lab1", "rvs-vllm.service")]

def on_host(name: str, script: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return api.run_on(name, script, timeout=timeout)


def completion(stack) -> str:
    outputs = stack.outputs()
    return chat(outputs["openai_base_url"], outputs["api_key"], outputs["model"], "Hello!")


def test_outputs_have_stable_names(served_stack):
    outputs = served_stack.outputs()
    assert outputs["endpoint_url"] == "http://10.201.0.11:8000"
    assert outputs["openai_base_url"] == "http://10.201.0.11:8000/v1"
    assert outputs["model"] == "tiny-qwen2"
    assert outputs["ray_address"] == "10.201.0.11:6379"
    assert [(node["name"], node["role"]) for node in outputs["nodes"]] == [("lab1", "head"), ("lab2", "worker")]
    assert len(outputs["api_key"]) >= 32
    secret_listing = served_stack.project.run("stack", "output", "--json").stdout
    assert json.loads(secret_listing)["api_key"] == "[secret]"


def test_two_debian_releases_reached_as_a_sudo_user_run_one_python_and_one_package_set(served_stack):
    """The cluster the users have: hosts that refuse root logins, on Debian 12 and 13, whose own
    python3 differ (3.11 and 3.13), serving one model through the stack's own interpreter."""
    releases = {host: on_host(host, ". /etc/os-release && echo $VERSION_ID").stdout.strip() for host in ("lab1", "lab2")}
    assert releases == {"lab1": "12", "lab2": "13"}
    system_pythons = {on_host(host, "python3 -c 'import sys; print(sys.version_info[:2])'").stdout for host in releases}
    assert len(system_pythons) == 2  # the OS's interpreters differ...
    fingerprints = served_stack.outputs()["fingerprints"]
    assert fingerprints["lab1"] == fingerprints["lab2"] and fingerprints["lab1"]["python"] == "3.11.2"  # ...the stack's do not
    assert fingerprints["lab1"]["python_build"] and fingerprints["lab1"]["packages"]
    for host in releases:
        venv_python = on_host(host, f"{VENV_PYTHON} -c 'import sys, ray; print(sys.version.split()[0], ray.__version__)'")
        assert venv_python.stdout.startswith("3.11.2 "), venv_python
    state = served_stack.project.run("stack", "export").stdout
    assert '"user": "rvs"' in state and '"sudo": true' in state and '"user": "root"' not in state
    assert completion(served_stack).strip()


def test_one_pipeline_stage_per_host(served_stack):
    """vLLM's stage workers are Ray actors titled `ray::RayWorkerProc...` (`RayWorkerWrapper` with the v1 executor)."""
    for host in ("lab1", "lab2"):
        stages = on_host(host, "pgrep -f '[r]ay::RayWorker(Proc|Wrapper)' || true").stdout.split()
        assert len(stages) == 1, (host, stages)


def test_chat_completion_needs_the_api_key(served_stack):
    assert completion(served_stack).strip()
    request = urllib.request.Request(
        "http://10.201.0.11:8000/v1/chat/completions",
        data=json.dumps({"model": "tiny-qwen2", "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401


def test_second_up_changes_nothing(served_stack):
    assert served_stack.planned_changes() == {}
    result = served_stack.timed("no-op up", "up", "--yes", "--skip-preview")
    assert "unchanged" in result.stdout and "updated" not in result.stdout


def test_refresh_and_up_repair_a_dead_worker(served_stack):
    on_host("lab2", "systemctl stop rvs-ray-worker.service")
    served_stack.project.run("refresh", "--yes")
    assert served_stack.planned_changes().get("serving-release") == "update"
    served_stack.timed("repair worker", "up", "--yes", "--skip-preview")
    assert on_host("lab2", "systemctl is-active rvs-ray-worker.service").stdout.strip() == "active"
    assert completion(served_stack).strip()


def test_a_model_setting_changes_only_the_release_and_its_diff_is_readable(served_stack):
    served_stack.project.run("config", "set", "--path", "vllm.max_model_len", "512")
    try:
        changed = set(served_stack.planned_changes()) - {"ray-vllm-stack-dev"}  # the stack's outputs
        # The release, and the Serving component whose stated plan (`stack.disclosed`) changes with it:
        # a component's inputs touch no host.
        assert changed == {"serving-release", "serving"}, changed
        # A reviewer sees the field that changes, old and new, in plain text, and no secret value.
        diff = served_stack.project.run("preview", "--diff").stdout
        assert "--max-model-len=1024" in diff and "--max-model-len=512" in diff, diff
        assert served_stack.outputs()["api_key"] not in diff
        assert "VLLM_API_KEY" not in diff
    finally:
        served_stack.project.run("config", "set", "--path", "vllm.max_model_len", "1024")
    assert served_stack.planned_changes() == {}


def test_host_crash_during_serving_heals_after_up(served_stack):
    api.crash("lab2")
    api.start("lab2")
    served_stack.timed("up after crash", "up", "--yes", "--refresh", "--skip-preview")
    assert completion(served_stack).strip()


def test_consumer_reads_outputs_through_a_stack_reference(served_stack, tmp_path):
    from artifacts.paths import REPO_ROOT

    consumer = served_stack.project.env
    workdir = REPO_ROOT / "examples" / "consumer"
    run = lambda *args: subprocess.run(  # noqa: E731
        ["pulumi", *args, "--non-interactive", "--cwd", str(workdir)],
        env=consumer, capture_output=True, text=True, timeout=600,
    )
    assert run("stack", "init", "consumer-test").returncode == 0
    try:
        result = run("up", "--yes", "--skip-preview")
        assert result.returncode == 0, result.stdout + result.stderr
        reply = json.loads(run("stack", "output", "--json").stdout)["reply"]
        assert reply.strip()
    finally:
        run("destroy", "--yes")
        run("stack", "rm", "--yes", "consumer-test")


def test_destroy_stops_everything_and_up_brings_it_back(served_stack):
    served_stack.timed("destroy", "destroy", "--yes", "--skip-preview")
    for host in ("lab1", "lab2"):
        processes = on_host(host, "pgrep -af '[r]aylet|[g]cs_server|[v]llm.entrypoints' || true").stdout
        assert processes.strip() == "", processes
        units = on_host(host, "ls /etc/systemd/system/rvs-* 2>/dev/null || true").stdout
        assert units.strip() == ""
        # The host firewall's table went with its unit; nft itself stays, like every system package.
        tables = on_host(host, "nft list tables").stdout
        assert "ray_vllm_stack" not in tables, tables
    served_stack.timed("recreate with caches", "up", "--yes", "--skip-preview")
    assert completion(served_stack).strip()
    print("timings:", served_stack.timings)


def test_pyinfra_cli_provisions_a_node_as_pulumi_does(served_stack):
    """The documented CLI path, from the project folder with the committed dev stack file: it puts
    back what a node lost, and the node's fingerprint equals the one `pulumi up` recorded."""
    from artifacts.paths import REPO_ROOT
    from deploys.runner import run_deploy
    from deploys.steps import STEPS
    from pyinfra_inventory import host_entries, stack_config
    from stack.fingerprint import fingerprint
    from stack.hosts import host_key_policy, ssh_target

    recorded = served_stack.outputs()["fingerprints"]["lab2"]
    config = stack_config(REPO_ROOT, "dev")
    lab2 = next(host for host in config.hosts if host.name == "lab2")
    weights = f"{NodeInputs.from_config(config, lab2).model_path()}/config.json"
    on_host("lab2", f"rm /etc/ray-vllm-stack/node.env {weights}")
    done = subprocess.run(
        ["pyinfra", "-y", "--limit", "lab2", "pyinfra_inventory.py", "pyinfra_deploy.py"],
        cwd=REPO_ROOT, env=served_stack.project.env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert on_host("lab2", f"test -s /etc/ray-vllm-stack/node.env && test -s {weights}").returncode == 0
    specs = dict(dict(host_entries(config))["lab2"]["steps"])

    def observed(step: str, **spec) -> dict:
        result = run_deploy([ssh_target(lab2)], None, observe=STEPS[step].observe, host_keys=host_key_policy(lab2), **spec)
        assert result["lab2"].error is None, result["lab2"].error
        return result["lab2"].facts

    steps = ("python-runtime", "python-env", "model-weights")
    assert fingerprint(*(observed(step, spec=specs[step]) for step in steps), observed("facts")) == recorded
    # And Pulumi, reading the host again, finds it exactly as it left it.
    served_stack.project.run("refresh", "--yes")
    assert served_stack.planned_changes() == {}


def _venv_of(host: str, unit: str) -> str:
    """The venv a unit runs, read from its unit file."""
    text = on_host(host, f"cat /etc/systemd/system/{unit}").stdout
    return re.search(r"/opt/ray-vllm-stack/venvs/[a-z]+-[0-9a-f]{16}", text).group(0)


def _edit_config(stack, edit) -> str:
    """Applies `edit` to the stack's config document; the text before, to put back."""
    stack_file = stack.project.workdir / "Pulumi.dev.yaml"
    before = stack_file.read_text()
    document = yaml.safe_load(before)
    edit(document["config"])
    stack_file.write_text(yaml.safe_dump(document))
    return before


def test_a_new_model_revision_and_package_serve_beside_the_previous_ones(served_stack):
    """The upgrade users make weekly, here a new revision of the model and a new version of one
    package (the stack's plugin): both land beside the running ones, the units switch over in start
    order and are verified, and the previous venv and weights stay on the nodes to go back to."""
    workdir = served_stack.project.workdir
    pyproject = workdir / "plugins" / "vllm-ray-cpu" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.1.1"'))
    revision = workdir / "tiny-qwen2-r2"
    shutil.copytree(TINY_MODEL, revision)
    (revision / "REVISION").write_text("2\n")
    old_model = on_host("lab1", "grep -o 'model=[^ ]*' /etc/systemd/system/rvs-vllm.service").stdout.strip()
    _edit_config(served_stack, lambda config: config["ray-vllm-stack:model"].update(path=str(revision)))
    outputs = served_stack.outputs()
    with OutageMeter(outputs["openai_base_url"], outputs["api_key"]) as outage:
        served_stack.timed("model and package upgrade", "up", "--yes", "--skip-preview")
    print(f"upgrade: the endpoint did not answer for {outage.longest_gap:.1f} s at most ({outage.failures} polls)")
    new = {(host, unit): _venv_of(host, unit) for host, unit in SERVING_UNITS}
    assert set(new.values()) != {VENV_PYTHON.removesuffix("/bin/python")} and len(set(new.values())) == 1, new
    venv = next(iter(new.values()))
    model = on_host("lab1", "grep -o 'model=[^ ]*' /etc/systemd/system/rvs-vllm.service").stdout.strip()
    assert model != old_model and model.startswith("model=/var/lib/ray-vllm-stack/models/tiny-qwen2-"), model
    for host in ("lab1", "lab2"):
        assert "0.1.1" in on_host(host, f"{venv}/bin/python -m pip show vllm-ray-cpu").stdout
        assert on_host(host, f"test -s {model.removeprefix('model=')}/REVISION").returncode == 0
        # The previous venv and weights, to go back to.
        assert on_host(host, f"test -x {VENV_PYTHON} && test -s {old_model.removeprefix('model=')}/config.json").returncode == 0
    assert completion(served_stack).strip()
    assert served_stack.planned_changes() == {}


def test_a_release_that_fails_puts_the_verified_one_back_and_up_says_why(served_stack):
    serving_before = {unit: on_host(host, f"cat /etc/systemd/system/{unit}").stdout for host, unit in SERVING_UNITS}
    good = _edit_config(served_stack, lambda config: config["ray-vllm-stack:vllm"].update(extra_args=["--no-such-flag"]))
    try:
        failed = served_stack.timed("failed release and rollback", "up", "--yes", "--skip-preview", check=False)
    finally:
        (served_stack.project.workdir / "Pulumi.dev.yaml").write_text(good)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "--no-such-flag" in output and "back on the last verified release" in output, output[-3000:]
    # The control: the same hosts serve, from the same units, and the stack has nothing to do.
    assert {unit: on_host(host, f"cat /etc/systemd/system/{unit}").stdout for host, unit in SERVING_UNITS} == serving_before
    assert completion(served_stack).strip()
    assert served_stack.planned_changes() == {}


def test_a_controller_killed_during_a_release_recovers_with_cancel_refresh_and_up(served_stack):
    """The controller dies while the hosts switch over (CI cancelled, laptop closed); the recovery
    the README gives brings the stack to the new release, serving, with nothing left to do."""
    project = served_stack.project
    _edit_config(served_stack, lambda config: config["ray-vllm-stack:vllm"].update(max_model_len=512))
    up = subprocess.Popen(
        ["pulumi", "up", "--yes", "--skip-preview", "--non-interactive"], cwd=project.workdir, env=project.env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while "--max-model-len=512" not in on_host("lab1", "cat /etc/systemd/system/rvs-vllm.service").stdout:
            assert up.poll() is None and time.monotonic() < deadline, "the release never reached vLLM's unit"
            time.sleep(1)
    finally:
        os.killpg(up.pid, signal.SIGKILL)  # the group started above: pulumi and its ssh
        # Pulumi starts its language host and providers in process groups of their own, inside the
        # session started above: end every process of that session, else they outlive the test.
        subprocess.run(["pkill", "-KILL", "-s", str(up.pid)], timeout=30)
        up.wait(timeout=60)
    locks = sorted(str(path.relative_to(project.workdir)) for path in (project.workdir / "state").rglob("locks/**/*.json"))
    locked = project.run("up", "--yes", "--skip-preview", check=False)
    assert locked.returncode != 0 and "locked" in locked.stdout + locked.stderr, locks  # what the user meets first
    project.run("cancel", "--yes")
    project.run("refresh", "--yes", "--clear-pending-creates", "--skip-preview")
    served_stack.timed("up after a killed controller", "up", "--yes", "--skip-preview")
    assert "--max-model-len=512" in on_host("lab1", "cat /etc/systemd/system/rvs-vllm.service").stdout
    assert completion(served_stack).strip()
    assert served_stack.planned_changes() == {}
