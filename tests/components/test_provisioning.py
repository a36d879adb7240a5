"""Step providers' decisions without hosts: what diffs, what replaces, what `check` rejects."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pulumi.runtime import rpc

from components import provisioning
from components.provisioning import StepProvider, check_inputs, step_changes
from deploys.runner import resolve
from deploys.steps import STEPS

HOST = {"name": "lab1", "address": "10.201.0.11", "user": "root", "port": 22, "key_file": "/k"}
PYTHON_TREE = {
    "source": "/c/python",
    "destination": "/opt/ray-vllm-stack/python/3.11.2",
    "manifest": "",
    "verify_content": True,
}
SPEC = {"version": "3.11.2", "glibc_floor": "2.34", "tree": PYTHON_TREE}


def inputs(**changes) -> dict:
    base = {"step": "python-runtime", "host": HOST, "spec": SPEC, "code": "c1",
            "host_keys": {"known_hosts_file": "/dev/null", "strict": "no"}, "purge_cache": False}  # fmt: skip
    return {**base, **changes}


def outputs(observed=None, applied=None, **changes) -> dict:
    applied = applied if applied is not None else {"version": "3.11.2"}
    return {**inputs(**changes), "observed": observed if observed is not None else applied, "applied": applied}


def test_nothing_changed_means_no_diff():
    assert step_changes(outputs(), inputs()) == ([], [])


def test_changed_spec_or_code_updates_in_place():
    assert step_changes(outputs(), inputs(spec={**SPEC, "version": "3.11.9"})) == (["spec"], [])
    assert step_changes(outputs(), inputs(code="c2")) == (["code"], [])


def test_drift_found_by_refresh_updates_the_step():
    drifted = outputs(observed={"version": "3.11.4"})
    assert step_changes(drifted, inputs()) == (["observed"], [])


def test_facts_report_but_never_repair():
    olds = outputs(observed={"cpus": 4}, applied={"cpus": 2}, step="facts", spec=None)
    assert step_changes(olds, inputs(step="facts", spec=None)) == ([], [])


def test_another_machine_replaces():
    moved = inputs(host={**HOST, "address": "10.201.0.99"})
    assert step_changes(outputs(), moved) == (["host"], ["host"])
    new_key = inputs(host={**HOST, "key_file": "/k2"})
    assert step_changes(outputs(), new_key) == (["host"], [])


def test_check_reports_bad_inputs_per_property():
    failures = check_inputs(inputs(spec={**SPEC, "version": "3.11"}))
    assert [(f.property, f.reason) for f in failures] == [("spec", "version: String should match pattern '^\\d+\\.\\d+\\.\\d+$'")]
    assert [f.property for f in check_inputs(inputs(step="nope"))] == ["step"]
    assert [f.property for f in check_inputs(inputs(host={**HOST, "name": "Bad_Name"}))] == ["host"]


def test_check_leaves_values_unknown_at_preview_for_up():
    assert check_inputs(inputs(spec={**SPEC, "version": rpc.UNKNOWN})) == []


def test_diff_result_shape():
    result = StepProvider().diff("lab1/python-runtime", outputs(observed={"version": None}), inputs())
    assert result.changes is True and result.replaces == [] and result.delete_before_replace is False


def test_apply_records_the_observation_twice_and_names_failures(monkeypatch):
    from deploys.runner import HostResult

    def fake_run(hosts, deploy_fn, **kwargs):
        return {"lab1": HostResult("lab1", changed=True, facts={"version": "3.11.2"}, pushed_bytes=7)}

    monkeypatch.setattr(provisioning, "run_deploy", fake_run)
    outs = provisioning.apply_step(inputs())
    assert outs["observed"] == outs["applied"] == {"version": "3.11.2"}
    assert outs["changed"] is True and outs["pushed_bytes"] == 7
    assert step_changes(outs, inputs()) == ([], [])

    def failing_run(hosts, deploy_fn, **kwargs):
        return {"lab1": HostResult("lab1", error="lab1: Python runtime: python3 is 3.11.9 ...")}

    monkeypatch.setattr(provisioning, "run_deploy", failing_run)
    with pytest.raises(provisioning.StepError, match=r"^python-runtime on lab1: Python runtime: python3 is 3.11.9"):
        provisioning.apply_step(inputs())


def test_delete_keeps_an_unreachable_host_in_the_stack_unless_the_operator_lets_it_go(monkeypatch):
    from deploys.runner import HostResult

    def unreachable(hosts, deploy_fn, **kwargs):
        return {"lab1": HostResult("lab1", error="lab1: cannot connect over SSH to root@10.201.0.11:22: timed out", reachable=False)}

    monkeypatch.setattr(provisioning, "run_deploy", unreachable)
    step = inputs(step="runtime-env", spec={"address": "10.201.0.11"})
    monkeypatch.setenv(provisioning.LET_GO_VARIABLE, "lab2")  # another host let go: not this one
    with pytest.raises(provisioning.StepError) as kept:
        provisioning.retire_step(step)
    assert "cannot remove runtime-env from lab1: lab1: cannot connect over SSH" in str(kept.value)
    assert "RVS_LET_GO=lab1 pulumi destroy" in str(kept.value)
    monkeypatch.setenv(provisioning.LET_GO_VARIABLE, "lab2, lab1")  # the control: named, it is let go
    warning = provisioning.retire_step(step)
    assert warning.startswith("lab1: cannot connect over SSH") and warning.endswith("left runtime-env on it as it is")
    preflight = inputs(step="nvidia-preflight", spec={"min_driver": "580.65.06", "cuda": "13.0"})
    assert provisioning.retire_step(preflight) is None  # a preflight installs nothing to remove


def test_state_recorded_before_the_layers_were_separated_is_read_and_retired(monkeypatch):
    """An existing stack upgrades in place: its recorded host (the whole HostConfig) and a service's
    inline secret files are read in today's shape, so refresh and destroy work before any `up`."""
    from deploys.runner import HostResult

    legacy_host = {"name": "lab1", "address": "10.201.0.11", "ssh": {"user": "root", "port": 22, "key_file": "/k",
                   "host_keys": "ignore"}, "role": "head", "accelerator": "cpu", "gpus": []}  # fmt: skip
    legacy_spec = {"unit": "rvs-vllm.service", "unit_text": "[Unit]\n", "probe": ["http"], "ready_timeout": 900,
                   "files": [{"path": "/etc/ray-vllm-stack/vllm.env", "content": "VLLM_API_KEY=k\n", "mode": "600"}]}  # fmt: skip
    calls = []

    def record(hosts, deploy_fn, **kwargs):
        calls.append((hosts, kwargs))
        return {"lab1": HostResult("lab1", facts={"active": True})}

    monkeypatch.setattr(provisioning, "run_deploy", record)
    legacy = inputs(step="vllm", host=legacy_host, spec=legacy_spec)
    refreshed = provisioning.observe_step(legacy)
    assert refreshed["host"] == HOST and refreshed["observed"] == {"active": True}
    assert refreshed["spec"]["secret_files"] == [{"path": "/etc/ray-vllm-stack/vllm.env", "mode": "600"}]
    assert refreshed["secrets"] == {"/etc/ray-vllm-stack/vllm.env": "VLLM_API_KEY=k\n"}
    assert "files" not in refreshed["spec"]
    assert provisioning.retire_step(legacy) is None
    (hosts, kwargs), _ = calls[-1], None
    assert hosts[0].key_file == "/k" and kwargs["spec"].managed_paths()[1] == "/etc/ray-vllm-stack/vllm.env"
    # Positive control: today's shape passes through unchanged.
    assert provisioning.recorded_in_current_shape(inputs()) == inputs()


def test_python_runtime_recorded_when_nodes_ran_the_os_python_is_read_as_the_stacks(monkeypatch):
    """Before the stack brought its interpreter the step only checked the OS's python3; refresh and
    destroy of such a stack read it as the stack's interpreter at its prefix, not pushed yet."""
    from deploys.runner import HostResult

    calls = []

    def record(hosts, deploy_fn, **kwargs):
        calls.append(kwargs)
        return {"lab1": HostResult("lab1", facts={"version": None})}

    monkeypatch.setattr(provisioning, "run_deploy", record)
    legacy = inputs(spec={"version": "3.11.2", "interpreter": "python3"})
    refreshed = provisioning.observe_step(legacy)
    assert refreshed["spec"] == {**SPEC, "glibc_floor": "0.0", "tree": {**PYTHON_TREE, "source": ""}}
    assert provisioning.retire_step({**legacy, "purge_cache": True}) is None
    assert calls[-1]["spec"].tree.destination == "/opt/ray-vllm-stack/python/3.11.2"
    assert calls[-1]["purge_cache"] is True
    assert provisioning.recorded_in_current_shape(inputs()) == inputs()  # today's spec: unchanged


def test_code_digest_covers_the_deploys():
    digest = provisioning.deploy_code_digest()
    assert len(digest) == 64 and digest == provisioning.deploy_code_digest()


def test_every_step_names_functions_the_worker_can_import():
    for step in STEPS.values():
        for function in filter(None, (step.apply, step.observe, step.retire)):
            assert callable(resolve(function)), f"{step.name}: {function}"


def test_the_program_and_its_providers_do_not_load_pyinfra():
    """pyinfra, gevent and paramiko cost every `pulumi` command half a second per process."""
    code = (
        "import sys\n"
        "import components.node, components.artifacts, components.serving\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pyinfra', 'gevent', 'paramiko'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
