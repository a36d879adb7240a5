"""A Pulumi program in a scratch folder with its own file backend, driven through the pinned CLI.

Same approach as the engine tests (`tests/program/conftest.py`): the bench never reads or writes
the project's own `.pulumi/` state, and each measurement starts from an empty stack.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from tools.pulumi_env import PULUMI_BIN, REPO_ROOT

STACK = "bench"
PROVISIONING_PROGRAM = REPO_ROOT / "examples" / "provisioning" / "__main__.py"


class PulumiError(RuntimeError):
    pass


BYTECODE_CACHE = REPO_ROOT / ".cache" / "bench" / "pycache"
"""Where the bench's Python processes keep compiled bytecode (PYTHONPYCACHEPREFIX), so the
project's shared `.venv` is never written to."""
COMPILED_DIRS = (".venv/lib", "artifacts", "deploys", "stack", "components", "lab", "bench", "tools")


def with_bytecode(env: dict[str, str], cached: bool) -> dict[str, str]:
    """`env` running Python the default way (bytecode written once, then reused) or without bytecode.

    This machine's environment sets PYTHONDONTWRITEBYTECODE=1 and uv installs the venv without
    bytecode, so as it stands every Python process of a `pulumi` command (language host, program,
    dynamic providers, one pyinfra worker per node step) compiles its ~2,000 modules from source.
    Users' machines keep bytecode; the bench measures that, and the no-bytecode case beside it.
    """
    env = {key: value for key, value in env.items() if key not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    return {**env, "PYTHONPYCACHEPREFIX": str(BYTECODE_CACHE)} if cached else {**env, "PYTHONDONTWRITEBYTECODE": "1"}


def warm_bytecode_cache() -> None:
    """Compiles the controller's Python once into BYTECODE_CACHE, as installing it with bytecode would."""
    subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "python"), "-m", "compileall", "-q", "-j", "0", *COMPILED_DIRS],
        cwd=REPO_ROOT, env=with_bytecode(dict(os.environ), cached=True), capture_output=True,
    )  # fmt: skip


class BenchProject:
    def __init__(self, workdir: Path, extra_env: dict[str, str] | None = None):
        self.workdir = workdir
        (workdir / "state").mkdir(parents=True, exist_ok=True)
        self.env = {
            **with_bytecode(dict(os.environ), cached=True),
            **(extra_env or {}),
            "PATH": f"{PULUMI_BIN}:{REPO_ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
            "PYTHONPATH": str(REPO_ROOT),
            "PULUMI_HOME": str(workdir / "home"),
            "PULUMI_BACKEND_URL": f"file://{workdir / 'state'}",
            "PULUMI_CONFIG_PASSPHRASE": "bench",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_PYTHON_CMD": str(REPO_ROOT / ".venv" / "bin" / "python"),
        }
        self.env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)

    def use_bytecode_cache(self, cached: bool) -> None:
        self.env = with_bytecode(self.env, cached)

    @classmethod
    def stack_program(cls, workdir: Path, config: dict) -> BenchProject:
        """The project's own program (`__main__.py`) with `config` (keys without the namespace).

        The program imports the project's packages and venv from the checkout itself (PYTHONPATH,
        an absolute virtualenv), so their paths, and with them the bytecode cache, stay the same
        from one scratch folder to the next, as they do for a user working in a checkout."""
        project_file = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
        project_file["runtime"]["options"]["virtualenv"] = str(REPO_ROOT / ".venv")
        (workdir / "Pulumi.yaml").write_text(yaml.safe_dump(project_file, sort_keys=False))
        shutil.copy(REPO_ROOT / "__main__.py", workdir)
        project = cls(workdir)
        project.init_stack(config)
        return project

    @classmethod
    def provisioning_program(cls, workdir: Path, env: dict[str, str]) -> BenchProject:
        """`examples/provisioning/__main__.py` (its environment in `env`): the `Node` component on every host, nothing served."""
        (workdir / "Pulumi.yaml").write_text(
            "name: rvs-bench-provisioning\nruntime:\n  name: python\n"
            f"  options:\n    virtualenv: {REPO_ROOT / '.venv'}\n"
        )
        shutil.copy(PROVISIONING_PROGRAM, workdir / "__main__.py")
        project = cls(workdir, env)
        project.init_stack({})
        return project

    def init_stack(self, config: dict) -> None:
        document = {"config": {f"ray-vllm-stack:{key}": value for key, value in config.items()}}
        (self.workdir / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump(document))
        self.run("stack", "init", STACK)

    def run(self, *args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
        done = subprocess.run(
            ["pulumi", *args, "--non-interactive"], cwd=self.workdir, env=self.env,
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if done.returncode != 0:
            raise PulumiError(f"pulumi {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def timed(self, *args: str) -> float:
        started = time.monotonic()
        self.run(*args)
        return time.monotonic() - started

    def outputs(self) -> dict:
        return json.loads(self.run("stack", "output", "--json", "--show-secrets").stdout)

    def resources(self) -> list[dict]:
        return json.loads(self.run("stack", "export").stdout)["deployment"].get("resources") or []

    def last_changes(self) -> dict[str, int]:
        """{op: count} of the last update, e.g. {"same": 24} for a no-op."""
        history = json.loads(self.run("stack", "history", "--json").stdout)
        return history[0].get("resourceChanges") or {} if history else {}
