"""Each fact's command, and its parse of recorded output."""

import json

import pytest

from deploys import facts
from tests.deploys.harness import CASES

FACT_CASES = json.loads((CASES / "facts.json").read_text())


@pytest.mark.parametrize("case", FACT_CASES, ids=[f"{c['fact']}: {c.get('note', c['output'][0][:30])}" for c in FACT_CASES])
def test_fact(case):
    fact = getattr(facts, case["fact"])()
    if "command" in case:
        assert fact.command(**case.get("kwargs", {})) == case["command"]
    assert fact.process(case["output"]) == case["result"]


def test_missing_nvidia_smi_is_none():
    """pyinfra returns `default()` when `requires_command` is absent: no nvidia-smi means None."""
    assert facts.NvidiaSmi().requires_command() == "nvidia-smi"
    assert facts.NvidiaSmi.default() is None
