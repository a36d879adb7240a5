"""Each operation, given recorded facts, yields exactly the expected commands, a noop, or an error."""

import pytest
from pyinfra.api import OperationError

from deploys import operations
from tests.deploys.harness import load_cases, run_operation

OPERATIONS = [
    "debs_installed",
    "python_version",
    "tree_synced",
    "venv_installed",
    "models_retained",
    "readable_by_all",
    "runtime_env_file",
    "nvidia_driver",
]
CASES = [(name, case) for name in OPERATIONS for case in load_cases(f"{name}.json")]


@pytest.mark.parametrize(("name", "case"), CASES, ids=[f"{name}: {case['id']}" for name, case in CASES])
def test_operation(name, case):
    operation = getattr(operations, name)
    if "error" in case:
        with pytest.raises(OperationError) as raised:
            run_operation(operation, case["args"], case["facts"])
        assert str(raised.value) == case["error"]
        return
    commands, noops = run_operation(operation, case["args"], case["facts"])
    assert commands == case.get("commands", [])
    assert noops == ([case["noop"]] if "noop" in case else [])
