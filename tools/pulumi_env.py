"""The environment that runs the pinned Pulumi CLI offline against a scratch file backend.

What `env.sh` sets for people, for programs that drive `pulumi` themselves (engine tests, the
bench) and must never touch the project's own `.pulumi/` state.
"""

import os
from pathlib import Path

from artifacts.paths import REPO_ROOT

PULUMI_VERSION = next(
    line.split(":=")[1].strip()
    for line in (REPO_ROOT / "Makefile").read_text().splitlines()
    if line.startswith("PULUMI_VERSION")
)
PULUMI_BIN = REPO_ROOT / ".tools" / "pulumi" / PULUMI_VERSION / "bin"


def scratch_pulumi_env(workdir: Path, passphrase: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (os.environ by default) with the pinned CLI on PATH and state under `workdir/state`."""
    (workdir / "state").mkdir(parents=True, exist_ok=True)
    env = {
        **(os.environ if base is None else base),
        "PATH": f"{PULUMI_BIN}:{REPO_ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        "PYTHONPATH": str(REPO_ROOT),
        "PULUMI_HOME": str(workdir / "home"),
        "PULUMI_BACKEND_URL": f"file://{workdir / 'state'}",
        "PULUMI_CONFIG_PASSPHRASE": passphrase,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_PYTHON_CMD": str(REPO_ROOT / ".venv" / "bin" / "python"),
    }
    env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
    return env
