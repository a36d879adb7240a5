"""Each fact's command, and its parse of recorded output."""

import json

import pytest

from deploys import facts
from tests.deploys.harness import CASES, check_fact_case

FACT_CASES = json.loads((CASES / "facts.json").read_text())


@pytest.mark.parametrize(
    "case", FACT_CASES, ids=[f"{c['fact']}: {c.get('note') or c['output'][0][:30]}" for c in FACT_CASES]
)
def test_fact(case):
    check_fact_case(facts, case)


def test_missing_nvidia_smi_is_none():
    """pyinfra returns `default()` when `requires_command` is absent: no nvidia-smi means None."""
    assert facts.NvidiaSmi().requires_command() == "nvidia-smi"
    assert facts.NvidiaSmi.default() is None
