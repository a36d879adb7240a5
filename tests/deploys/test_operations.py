"""Each operation, given recorded facts, yields exactly the expected commands, a noop, or an error."""

import pytest

from deploys import operations
from tests.deploys.harness import check_operation_case, load_cases

OPERATIONS = [
    "debs_installed",
    "debs_from_sources",
    "python_installed",
    "tree_synced",
    "venv_installed",
    "venvs_retained",
    "models_retained",
    "readable_by_all",
    "runtime_env_file",
    "nvidia_driver",
    "secret_file",
    "os_platform",
]
CASES = [(name, case) for name in OPERATIONS for case in load_cases(f"{name}.json")]


@pytest.mark.parametrize(("name", "case"), CASES, ids=[f"{name}: {case['id']}" for name, case in CASES])
def test_operation(name, case):
    check_operation_case(getattr(operations, name), case)
