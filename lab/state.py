"""What `up` recorded: the lab's spec and base, plus a lock so two lab commands never interleave."""

import contextlib
import fcntl
import json
from dataclasses import asdict
from pathlib import Path

from lab.errors import LabError
from lab.layout import LabSpec
from lab.paths import STATE_DIR

_SPEC_FILE = STATE_DIR / "lab.json"


@contextlib.contextmanager
def locked():
    """Hold the lab lock: a second `up`/`down` waits rather than racing the first."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def save(spec: LabSpec, base: Path) -> None:
    _SPEC_FILE.write_text(json.dumps({"spec": asdict(spec), "base": str(base)}, indent=2) + "\n")


def load() -> tuple[LabSpec, Path] | None:
    """The recorded lab, or None when no lab has been brought up."""
    try:
        recorded = json.loads(_SPEC_FILE.read_text())
    except FileNotFoundError:
        return None
    except ValueError as error:
        raise LabError(f"{_SPEC_FILE} is corrupt ({error}): run `python -m lab down` to reset the lab") from error
    return LabSpec(**recorded["spec"]), Path(recorded["base"])


def require() -> tuple[LabSpec, Path]:
    recorded = load()
    if recorded is None:
        raise LabError("the lab is not up: run `python -m lab up` first")
    return recorded


def forget() -> None:
    _SPEC_FILE.unlink(missing_ok=True)
