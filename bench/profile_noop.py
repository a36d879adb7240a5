"""Where a no-op `pulumi up` spends its time: `python -m bench.profile_noop [--hosts 2]`.

Provisions the hosts with the small `ray` package set and the tiny model (a few minutes), then
runs `pulumi preview` and `pulumi up --yes` with nothing to change, with every Python process of
the run (language host, program, dynamic providers) under cProfile, and prints each process's
lifetime and its most expensive functions. The `pulumi` binary itself is the remainder.
"""

from __future__ import annotations

import argparse
import pstats
import tempfile
import time
from pathlib import Path

from bench.lab_session import fresh_lab
from bench.package_sets import ray_wheelhouse
from bench.project import BenchProject
from bench.scenarios import SERVED_NAME, TINY_MODEL
from lab.paths import INVENTORY_FILE

PROFILE_HOOK = '''
import atexit, cProfile, os, sys, time
_profile, _started = cProfile.Profile(), time.time()
_profile.enable()
def _dump():
    _profile.disable()
    role = " ".join(sys.argv[:3]).replace("/", "_")[-60:]
    _profile.dump_stats(os.path.join({out!r}, f"{{_started:.3f}} {{time.time() - _started:.2f}}s {{os.getpid()}} {{role}}.prof"))
atexit.register(_dump)
'''


def profiled(project: BenchProject, out: Path, *args: str) -> float:
    """Runs `pulumi <args>` with every Python process profiled into `out`; returns the wall time."""
    hook = out / "hook"
    hook.mkdir(parents=True, exist_ok=True)
    (hook / "sitecustomize.py").write_text(PROFILE_HOOK.format(out=str(out)))
    saved = project.env["PYTHONPATH"]
    project.env["PYTHONPATH"] = f"{hook}:{saved}"
    try:
        return project.timed(*args)
    finally:
        project.env["PYTHONPATH"] = saved


def summary(out: Path, top: int) -> str:
    """Per process: its lifetime and role (the file name), then where its own time went (self
    time; waiting on gRPC shows up as `acquire`/`poll`)."""
    lines = []
    for path in sorted(out.glob("*.prof")):
        lines.append(f"== {path.stem}")
        stats = pstats.Stats(str(path))
        entries = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)
        for (filename, line, function), (_, calls, own, cumulative, _) in entries[:top]:
            lines.append(f"   {own:6.2f} s own {cumulative:6.2f} s cum {calls:6d}x  {function}  {Path(filename).name}:{line}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_noop", description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rvs-profile-") as scratch, fresh_lab(args.hosts, None) as _hosts:
        environment = {
            "RVS_INVENTORY": str(INVENTORY_FILE),
            "RVS_MODEL": str(TINY_MODEL),
            "RVS_WHEELHOUSE": str(ray_wheelhouse()),
            "RVS_SERVED_NAME": SERVED_NAME,
        }
        project = BenchProject.provisioning_program(Path(scratch), environment)
        print(f"first up: {project.timed('up', '--yes'):.1f} s")
        for command in (("preview",), ("up", "--yes", "--skip-preview"), ("up", "--yes")):
            out = Path(scratch) / "-".join(command)
            started = time.time()
            seconds = profiled(project, out, *command)
            print(f"\n######## pulumi {' '.join(command)}: {seconds:.1f} s (started {started:.3f})")
            print(summary(out, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
