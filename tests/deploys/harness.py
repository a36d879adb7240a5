"""Runs an operation's generator against recorded facts, pyinfra-test style: no SSH, no state.

`FakeHost` answers `get_fact` from a {fact class name[:first argument]: value} table and records `noop` reasons;
commands come back as plain data (shell strings, calls, uploads) to compare with the JSON cases.
"""

from __future__ import annotations

import json
import typing
from io import StringIO
from pathlib import Path

import pytest
from pydantic import TypeAdapter
from pyinfra.api import Config, FileUploadCommand, FunctionCommand, OperationError, StringCommand
from pyinfra.context import ctx_host, ctx_state

CASES = Path(__file__).parent / "cases"
FIXTURES = Path(__file__).parent / "fixtures"
"""Real outputs of the commands facts run (see its README for where each came from)."""
SECTION = "--ray-vllm-stack--"
"""The line multi-part fact commands print between their parts."""


class FakeHost:
    name = "lab1"
    current_op_global_arguments: dict = {}

    def __init__(self, facts: dict):
        self.facts = facts
        self.noops: list[str] = []

    def get_fact(self, cls, *args, **kwargs):
        """`"<Fact>:<first argument>"` entries answer for that argument only, `"<Fact>"` for any."""
        arguments = [*args, *kwargs.values()]
        if arguments and f"{cls.__name__}:{arguments[0]}" in self.facts:
            return self.facts[f"{cls.__name__}:{arguments[0]}"]
        return self.facts.get(cls.__name__, cls.default())

    def noop(self, description: str) -> None:
        self.noops.append(description)

    def get_temp_filename(self, *args, **kwargs) -> str:
        return "/tmp/pyinfra-temp"


class FakeState:
    config = Config()
    cwd = None


def load_cases(filename: str) -> list[dict]:
    cases = json.loads((CASES / filename).read_text())
    return [dict(case, id=case["name"]) for case in cases]


def render(command) -> object:
    if isinstance(command, str):  # operations may yield plain strings; pyinfra wraps them
        return command
    if isinstance(command, StringCommand):
        if "_stdin" in command.connector_arguments:  # what the command reads: compared, never in its text
            return {"command": command.get_raw_value(), "stdin": command.connector_arguments["_stdin"]}
        return command.get_raw_value()
    if isinstance(command, FunctionCommand):
        return {"call": command.function.__name__, "args": json.loads(json.dumps(command.args))}
    if isinstance(command, FileUploadCommand):
        content = command.src.getvalue() if isinstance(command.src, StringIO) else str(command.src)
        return {"upload": command.dest, "content": content}
    raise TypeError(f"unexpected command {command!r}")


def run_operation(operation, args: dict, facts: dict) -> tuple[list, list[str]]:
    """(commands, noop reasons) of `operation` with `args` given as JSON (specs validated)."""
    hints = typing.get_type_hints(operation._inner)
    typed = {key: TypeAdapter(hints[key]).validate_python(value) for key, value in args.items()}
    host = FakeHost(facts)
    with ctx_state.use(FakeState()), ctx_host.use(host):
        commands = [render(command) for command in operation._inner(**typed)]
    return commands, host.noops


def check_operation_case(operation, case: dict) -> None:
    """`operation` given the case's args and facts yields exactly its commands, its noop, or raises its error."""
    if "error" in case:
        with pytest.raises(OperationError) as raised:
            run_operation(operation, case["args"], case["facts"])
        assert str(raised.value) == case["error"]
        return
    commands, noops = run_operation(operation, case["args"], case["facts"])
    assert commands == case.get("commands", [])
    assert noops == ([case["noop"]] if "noop" in case else [])


def check_fact_case(module, case: dict) -> None:
    """The case's fact (a class of `module`) renders its command and parses its recorded output."""
    fact = getattr(module, case["fact"])()
    if "command" in case:
        assert fact.command(**case.get("kwargs", {})) == case["command"]
    assert fact.process(case["output"]) == case["result"]
