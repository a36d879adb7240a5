"""Runs `bench/baseline.sh` (the by-hand deployment) and checks it does what the stack does.

The comparison is only fair if the script starts Ray and vLLM exactly like the stack's units, so
before the baseline runs, its `commands` output is compared with what the stack renders for the
same hosts (`stack.ray_units`, `stack.vllm_unit`, `deploys.runtime_env`): every flag and
variable must match, except where each puts its files.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from artifacts.paths import REPO_ROOT
from deploys.runtime_env import runtime_env
from deploys.specs import RuntimeEnvSpec
from stack.config import HostConfig
from stack.node_steps import NodeInputs, stack_venv
from stack.ray_units import RAY_AUTH_ENVIRONMENT, ray_start_command
from stack.serving import serving_plan
from stack.validation import load_stack_config
from stack.vllm_unit import vllm_command, vllm_environment

SCRIPT = Path(__file__).with_name("baseline.sh")
LAB_INTERFACE = "eth0"
PATH_FLAGS = {"--temp-dir", "--model"}
"""Where the stack and the script put their files differs by design."""
PATH_VARIABLES = {"RAY_AUTH_TOKEN_PATH"}


class BaselineError(RuntimeError):
    pass


@dataclass
class BaselineRun:
    seconds: float
    phases: list[tuple[str, str, float]] = field(default_factory=list)
    """(phase, host address or `all`, seconds) as the script reported them."""

    def phase_seconds(self, phase: str) -> list[float]:
        return [seconds for name, _, seconds in self.phases if name == phase]


@dataclass(frozen=True)
class BaselineInputs:
    hosts: list[HostConfig]
    wheelhouse: Path
    model: Path
    served_name: str
    api_key: str
    ray_token: str
    plugin_wheels: tuple[str, ...] = ()
    """Relative to `wheelhouse`: the project's own wheels (the vLLM CPU plugin)."""

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "BASELINE_HOSTS": " ".join(str(host.address) for host in self.hosts),
            "BASELINE_SSH_KEY": str(self.hosts[0].ssh.key_file),
            "BASELINE_SSH_USER": self.hosts[0].ssh.user,
            "BASELINE_WHEELHOUSE": str(self.wheelhouse),
            "BASELINE_PLUGIN_WHEELS": " ".join(self.plugin_wheels),
            "BASELINE_MODEL": str(self.model),
            "BASELINE_SERVED_NAME": self.served_name,
            "BASELINE_API_KEY": self.api_key,
            "BASELINE_RAY_TOKEN": self.ray_token,
        }


def run_baseline(action: str, inputs: BaselineInputs, timeout: float = 3600) -> BaselineRun:
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(SCRIPT), action], cwd=REPO_ROOT, env=inputs.environment(),
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise BaselineError(f"baseline.sh {action} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return BaselineRun(seconds, parse_phases(done.stdout))


def parse_phases(output: str) -> list[tuple[str, str, float]]:
    phases = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "BENCH":
            phases.append((parts[1], parts[2], float(parts[3])))
    return phases


def script_commands(inputs: BaselineInputs) -> dict[str, list[str]]:
    """`baseline.sh commands`: {"ray-head": argv, "ray-head-env": [K=V, ...], ...}."""
    done = subprocess.run(["bash", str(SCRIPT), "commands"], env=inputs.environment(), capture_output=True,
                          text=True, check=True)  # fmt: skip
    return {key: shlex.split(value) for key, _, value in (line.partition(": ") for line in done.stdout.splitlines())}


def stack_commands(stack_config: dict, hosts: list[HostConfig]) -> dict[str, list[str]]:
    """The same keys as `script_commands`, rendered by the stack for `stack_config` on `hosts`."""
    raw = {**stack_config, "hosts": [host.model_dump(mode="json") for host in hosts]}
    raw.pop("inventory", None)
    config = load_stack_config(raw, set(), REPO_ROOT)
    plan = serving_plan(config, NodeInputs.from_config(config, config.head).model_path())
    venv = stack_venv(config.accelerator)

    def node_env(host: HostConfig) -> dict[str, str]:
        detected = [{"interface": LAB_INTERFACE, "address": str(host.address)}]
        spec = RuntimeEnvSpec(address=str(host.address), nccl_ib_disable=config.network.nccl_ib_disable)
        return {**runtime_env(spec, detected), **RAY_AUTH_ENVIRONMENT}

    def ray(host: HostConfig) -> list[str]:
        return ray_start_command(host, config.head, config.ports, config.ray, config.security, venv)

    def as_list(env: dict[str, str]) -> list[str]:
        return [f"{key}={value}" for key, value in env.items()]

    head = config.head
    commands = {"ray-head-env": as_list(node_env(head)), "ray-head": ray(head)}
    workers = [host for host in config.hosts if host.name != head.name]
    if workers:
        commands |= {"ray-worker-env": as_list(node_env(workers[0])), "ray-worker": ray(workers[0])}
    commands["vllm-env"] = as_list({**node_env(head), **vllm_environment(config, plan)})
    commands["vllm"] = vllm_command(config, plan, venv)
    return commands


def parity_problems(stack: dict[str, list[str]], script: dict[str, list[str]]) -> list[str]:
    """What differs between the stack's and the script's commands, path-valued settings aside."""
    problems = []
    for key in sorted(set(stack) | set(script)):
        if key not in stack or key not in script:
            problems.append(f"{key}: only in the {'stack' if key in stack else 'script'}")
            continue
        mine, theirs = _settings(stack[key], key.endswith("-env")), _settings(script[key], key.endswith("-env"))
        for name in sorted(set(mine) | set(theirs)):
            if mine.get(name) != theirs.get(name):
                problems.append(f"{key} {name}: stack {mine.get(name)!r}, script {theirs.get(name)!r}")
    return problems


def _settings(argv: list[str], is_env: bool) -> dict[str, object]:
    """Flags (or variables) by name; positional words by position; the program's path dropped."""
    settings = {}
    if is_env:
        for item in argv:
            name, _, value = item.partition("=")
            if name not in PATH_VARIABLES:
                settings[name] = value
        return settings
    for position, word in enumerate(argv[1:], start=1):
        if word.startswith("--"):
            name, _, value = word.partition("=")
            if name not in PATH_FLAGS:
                settings[name] = json.loads(value) if value.startswith("{") else value  # 1 == 1.0
        else:
            settings[f"argument {position}"] = word
    return settings
