"""`python -m bench`: run the scenarios, print the markdown table, write JSON and the README table.

    python -m bench                    # everything (about an hour on 2 cores)
    python -m bench --quick            # provisioning 2 hosts, stack and by hand (a few minutes)
    python -m bench --only "serve,8 hosts"   # the scenarios whose label contains one of the texts
    python -m bench --render bench/results/A.json B.json  # re-render saved runs, later ones winning

Needs root (the lab). Waits for the shared lab to be free before each scenario.
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import report
from bench.lab_session import LabUnavailable
from bench.project import warm_bytecode_cache
from bench.results import BASELINE, RESULTS_DIR, STACK, BenchRun, Measurement, load, skipped
from bench.scenarios import (
    FULL,
    RAY,
    Bench,
    lacking_room,
    provision_baseline,
    provision_stack,
    serve_baseline,
    serve_stack,
)


@dataclass(frozen=True)
class Scenario:
    label: str
    what: str
    hosts: int
    package_set: str
    tool: str
    serving: bool
    run: Callable[[Bench], list[Measurement]]


def scenario(kind: str, hosts: int, package_set: str, tool: str) -> Scenario:
    label = f"{kind} {hosts} hosts {package_set} {tool}"
    if kind == "serve":
        serve = serve_stack if tool == STACK else serve_baseline
        return Scenario(label, "cold up to first completion", hosts, package_set, tool, True, lambda bench: serve(bench, hosts))
    provision = provision_stack if tool == STACK else provision_baseline
    return Scenario(
        label, "provisioning", hosts, package_set, tool, False, lambda bench: provision(bench, hosts, package_set)
    )


def plan(quick: bool) -> list[Scenario]:
    """The order matters when the lab is scarce: the comparisons the targets need come first."""
    if quick:
        return [scenario("provision", 2, RAY, STACK), scenario("provision", 2, RAY, BASELINE)]
    scenarios = [scenario("serve", 2, FULL, STACK), scenario("serve", 2, FULL, BASELINE)]
    for hosts in (1, 2, 4, 8):
        scenarios += [scenario("provision", hosts, RAY, STACK), scenario("provision", hosts, RAY, BASELINE)]
    for hosts in (1, 2, 4):
        scenarios += [scenario("provision", hosts, FULL, STACK), scenario("provision", hosts, FULL, BASELINE)]
    return scenarios + [scenario("serve", 4, FULL, STACK), scenario("serve", 4, FULL, BASELINE)]


def merged(runs: list[BenchRun]) -> BenchRun:
    """One run from several (e.g. a full run and a rerun of one scenario); the last machine wins."""
    by_key: dict[tuple, Measurement] = {}
    for bench_run in runs:
        by_key |= {(*m.key, m.tool): m for m in bench_run.measurements}
    mode = "full" if any(bench_run.mode == "full" for bench_run in runs) else "quick"
    return BenchRun(mode, runs[-1].runs, runs[-1].machine, list(by_key.values()))


def deadline_from(text: str | None) -> float | None:
    """`HH:MM` (UTC, today) as epoch seconds."""
    if not text:
        return None
    hour, minute = map(int, text.split(":"))
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.replace(hour=hour, minute=minute, second=0, microsecond=0).timestamp()


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_all(scenarios: list[Scenario], bench: Bench, bench_run: BenchRun, path: Path) -> None:
    for index, item in enumerate(scenarios):
        log(f"--- {item.label}")
        try:
            reason = lacking_room(item.hosts, item.package_set, item.serving)
            bench_run.add([skipped(item.what, item.hosts, item.package_set, item.tool, reason)] if reason else item.run(bench))
            bench.deadline = None  # the deadline is for getting the lab at all; once had, finish the run
        except LabUnavailable as error:
            log(str(error))
            bench_run.add([skipped(s.what, s.hosts, s.package_set, s.tool, "the lab was busy") for s in scenarios[index:]])
            bench_run.save(path)
            return
        except Exception as error:  # one failed scenario must not lose the others' numbers
            traceback.print_exc()
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            bench_run.add([Measurement(item.what, item.hosts, item.package_set, item.tool, note=f"failed: {first_line[:160]}")])
        bench_run.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="provisioning of 2 hosts only, stack and by hand")
    parser.add_argument("--runs", type=int, default=3, help="repetitions of short operations (median reported)")
    parser.add_argument("--only", help="run only the scenarios whose label contains one of these texts (comma-separated)")
    parser.add_argument("--lab-deadline", help="HH:MM UTC: give up if the shared lab could not be had by then")
    parser.add_argument("--no-readme", action="store_true", help="do not write the table into README.md")
    parser.add_argument("--render", type=Path, nargs="+",
                        help="print (and put in the README) saved runs merged, instead of running; "
                        "a measurement in a later file replaces the same one in an earlier file")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)

    if args.render:
        bench_run = merged([load(path) for path in args.render])
    else:
        wanted = [text.strip() for text in (args.only or "").split(",") if text.strip()]
        scenarios = [s for s in plan(args.quick) if not wanted or any(text in s.label for text in wanted)]
        if args.list:
            print("\n".join(s.label for s in scenarios))
            return 0
        bench_run = BenchRun(mode="quick" if args.quick else "full", runs=args.runs)
        path = RESULTS_DIR / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{bench_run.mode}.json"
        scratch = Path(tempfile.mkdtemp(prefix="rvs-bench-"))
        warm_bytecode_cache()
        try:
            run_all(scenarios, Bench(args.runs, deadline_from(args.lab_deadline), scratch, log), bench_run, path)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        log(f"results: {path}")
    text = report.render(bench_run)
    print(text)
    if not args.no_readme:
        report.update_readme(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
