"""Running external commands with argument lists and turning failures into LabError."""

import shlex
import subprocess

from lab.errors import LabError

_TAIL_LINES = 15


def tail(text: str, lines: int = _TAIL_LINES) -> str:
    """Last lines of a command's output: enough to see why it failed."""
    return "\n".join(text.strip().splitlines()[-lines:])


def run(argv: list[str], *, what: str, timeout: float | None = 60, **kwargs) -> str:
    """Run argv, return its stdout; raise LabError naming `what` with stderr if it fails."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    except FileNotFoundError as error:
        raise LabError(f"{what}: {argv[0]} is not installed (apt-get install the package providing it)") from error
    except subprocess.TimeoutExpired as error:
        raise LabError(f"{what}: `{shlex.join(argv)}` did not finish within {timeout} s") from error
    if done.returncode != 0:
        raise LabError(f"{what}: `{shlex.join(argv)}` exited {done.returncode}: {tail(done.stderr or done.stdout)}")
    return done.stdout


def succeeds(argv: list[str]) -> bool:
    """True when argv exits 0; for probes whose failure just means 'absent'."""
    return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
