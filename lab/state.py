"""What `up` recorded: the lab's spec and its base per release, plus a lock so two lab commands never interleave."""

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


Bases = dict[str, Path]
"""The base root filesystem of each release the lab's hosts run."""


def save(spec: LabSpec, bases: Bases) -> None:
    record = {"spec": asdict(spec), "bases": {release: str(base) for release, base in bases.items()}}
    _SPEC_FILE.write_text(json.dumps(record, indent=2) + "\n")


def load() -> tuple[LabSpec, Bases] | None:
    """The recorded lab, or None when no lab has been brought up."""
    try:
        recorded = json.loads(_SPEC_FILE.read_text())
        return LabSpec(**recorded["spec"]), {release: Path(base) for release, base in recorded["bases"].items()}
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, AttributeError, LabError) as error:  # also a record of an older lab
        raise LabError(f"{_SPEC_FILE} is corrupt or from an older lab ({error!r}): "
                       "run `python -m lab down` to reset the lab") from error


def require() -> tuple[LabSpec, Bases]:
    recorded = load()
    if recorded is None:
        raise LabError("the lab is not up: run `python -m lab up` first")
    return recorded


def forget() -> None:
    _SPEC_FILE.unlink(missing_ok=True)
