"""The bench's scenarios. Each one brings up fresh lab hosts, measures the stack or the by-hand
baseline on them, and takes them down again, so every "cold" number starts from bare hosts and
the two sides never share a host's state. Controller caches (the wheelhouse, the .debs) are warm
for both sides: the baseline copies the very same wheelhouse.
"""

from __future__ import annotations

import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from artifacts.packages.flavors import get_flavor
from artifacts.packages.wheelhouse import build_wheelhouse
from artifacts.paths import REPO_ROOT
from bench.baseline import BaselineInputs, parity_problems, run_baseline, script_commands, stack_commands
from bench.lab_session import free_disk_bytes, fresh_lab
from bench.package_sets import cpu_wheelhouse, ray_wheelhouse, synthetic_weights
from bench.project import BenchProject
from bench.results import BASELINE, STACK, Measurement
from bench.traffic import TrafficMeter
from lab.paths import INVENTORY_FILE
from tools.availability import OutageMeter
from tools.chat import chat

TINY_MODEL = REPO_ROOT / ".cache" / "models" / "tiny-qwen2"
SERVED_NAME = "tiny-qwen2"
FULL, RAY = "full", "ray"
WEIGHTS_BYTES = 1 << 30
"""Synthetic weights for the provisioning points: big enough to measure throughput."""
COMPLETION_TIMEOUT = 300
NOOP_TARGET_HOSTS = 2
"""The host count of the no-op `up` target; there the bench also measures it without bytecode."""
GB = 1e9
VENV_BYTES = {FULL: 6.5 * GB, RAY: 0.6 * GB}
"""Installed size per host, for the disk check before a scenario (full: measured, see
/work/shared/notes; ray: an upper estimate)."""
DISK_MARGIN = 10 * GB
"""Left free for everyone else on the machine (the lab is shared, and so is its disk)."""
SERVE_MEMORY_PER_HOST = 2.8 * (1 << 30)
"""vLLM with pipeline parallelism over Ray on the lab: about 5.1 GiB for 2 hosts at peak."""


class BenchError(RuntimeError):
    pass


@dataclass
class Bench:
    runs: int
    """How often short operations (preview, no-op up) are repeated; their median is reported."""
    deadline: float | None
    """Epoch seconds after which waiting for the lab is given up; None: wait as long as it takes."""
    scratch: Path
    log: Callable[[str], None] = print

    def workdir(self, label: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{label}-", dir=self.scratch))


@dataclass(frozen=True)
class PackageSet:
    name: str
    folder: Path
    """The wheelhouse both sides push."""
    stack_source: str
    """What the provisioning program takes: a flavor (the stack's own Wheelhouse resource) or a folder."""
    plugin_wheels: tuple[str, ...]

    @property
    def wheelhouse_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.folder.rglob("*") if path.is_file())


def package_set(name: str) -> PackageSet:
    if name == FULL:
        # What the stack's Wheelhouse resource calls too; builds the plugin wheel if its source changed.
        house = build_wheelhouse(get_flavor("cpu"))
        return PackageSet(FULL, house.path, "cpu", (str(house.plugin_wheel),) if house.plugin_wheel else ())
    path = ray_wheelhouse(cpu_wheelhouse())
    return PackageSet(RAY, path, str(path), ())


def lacking_room(host_count: int, set_name: str, serving: bool) -> str | None:
    """Why a scenario of `host_count` hosts with the `set_name` packages (serving the tiny model,
    or provisioning the synthetic weights) would not fit on this machine, or None."""
    packages = package_set(set_name)
    per_host = VENV_BYTES[set_name] + packages.wheelhouse_bytes + (0 if serving else WEIGHTS_BYTES)
    needed, free = host_count * per_host + DISK_MARGIN, free_disk_bytes()
    if needed > free:
        return f"needs {needed / GB:.0f} GB of disk ({per_host / GB:.1f} GB per host), {free / GB:.0f} GB free"
    available = _memory_available()
    if serving and host_count * SERVE_MEMORY_PER_HOST > available:
        return f"serving needs about {host_count * SERVE_MEMORY_PER_HOST / (1 << 30):.0f} GiB, {available / (1 << 30):.0f} GiB available"
    return None


def stack_config(host_count: int) -> dict:
    """The dev stack's config (Pulumi.dev.yaml) for the lab's hosts, one pipeline stage per host."""
    document = yaml.safe_load((REPO_ROOT / "Pulumi.dev.yaml").read_text())["config"]
    config = {key.split(":", 1)[1]: value for key, value in document.items()}
    config["inventory"] = str(INVENTORY_FILE)
    config["model"] = {**config["model"], "path": str(TINY_MODEL)}
    config["parallelism"] = {**config.get("parallelism", {}), "pipeline_size": host_count}
    return config


# --- serving: cold up to the first completion ---------------------------------------------------


def serve_stack(bench: Bench, host_count: int) -> list[Measurement]:
    """Cold `pulumi up` to the first completion, no-op preview and up, destroy, and recreate with
    the caches the destroy kept on the hosts."""
    packages = package_set(FULL)
    measured = []
    with fresh_lab(host_count, bench.deadline, bench.log) as hosts:
        names = [host.name for host in hosts]
        project = BenchProject.stack_program(bench.workdir(f"serve-{host_count}"), stack_config(host_count))
        cold = _up_to_completion(project, names, "cold up to first completion", host_count)
        cold.details["wheelhouse_bytes"] = packages.wheelhouse_bytes
        measured.append(cold)
        bench.log(f"cold up to first completion: {cold.seconds:.1f} s")
        measured += _noop(bench, project, host_count, FULL, "")
        measured.append(_release_outage(bench, project, host_count))
        with TrafficMeter(names) as meter:
            destroy = project.timed("destroy", "--yes")
        measured.append(_measurement("destroy (caches kept)", host_count, FULL, [destroy], meter))
        measured.append(_up_to_completion(project, names, "recreate to first completion (caches kept)", host_count))
    return measured


def serve_baseline(bench: Bench, host_count: int) -> list[Measurement]:
    """The same deployment by hand (`bench/baseline.sh up`) to the first completion."""
    packages = package_set(FULL)
    with fresh_lab(host_count, bench.deadline, bench.log) as hosts:
        inputs = _baseline_inputs(hosts, packages, TINY_MODEL, SERVED_NAME)
        problems = parity_problems(stack_commands(stack_config(host_count), hosts), script_commands(inputs))
        if problems:
            raise BenchError("bench/baseline.sh does not start what the stack starts: " + "; ".join(problems))
        try:
            with TrafficMeter([host.name for host in hosts]) as meter:
                started = time.monotonic()
                run = run_baseline("up", inputs)
                _first_completion(f"http://{hosts[0].address}:8000/v1", inputs.api_key)
                seconds = time.monotonic() - started
        finally:
            run_baseline("down", inputs)
    measurement = _measurement("cold up to first completion", host_count, FULL, [seconds], meter, tool=BASELINE)
    measurement.details["phases"] = run.phases
    bench.log(f"by hand, cold up to first completion: {seconds:.1f} s")
    return [measurement]


# --- provisioning alone -------------------------------------------------------------------------


def provision_stack(bench: Bench, host_count: int, set_name: str) -> list[Measurement]:
    """Provisioning alone (packages, weights, runtime env; no Ray, no vLLM) with synthetic weights,
    then no-op preview and up of that stack."""
    packages = package_set(set_name)
    weights = synthetic_weights(WEIGHTS_BYTES)
    with fresh_lab(host_count, bench.deadline, bench.log) as hosts:
        names = [host.name for host in hosts]
        environment = {
            "RVS_INVENTORY": str(INVENTORY_FILE),
            "RVS_MODEL": str(weights),
            "RVS_WHEELHOUSE": packages.stack_source,
            "RVS_SERVED_NAME": "bench-weights",
        }
        project = BenchProject.provisioning_program(bench.workdir(f"provision-{host_count}-{set_name}"), environment)
        with TrafficMeter(names) as meter:
            seconds = project.timed("up", "--yes")
        resources = project.resources()
        provisioning = _measurement("provisioning", host_count, set_name, [seconds], meter)
        provisioning.weights_mb_per_s_per_node = _stack_weights_rate(resources)
        provisioning.details |= {
            "wheelhouse_bytes": packages.wheelhouse_bytes,
            "weights_bytes": WEIGHTS_BYTES,
            "step_seconds": _step_seconds(resources),
            "stack_downloaded_bytes": _downloaded_bytes(resources),
        }
        bench.log(f"provisioning {host_count} hosts ({set_name}): {seconds:.1f} s")
        return [provisioning, *_noop(bench, project, host_count, set_name, ", provisioning only")]


def provision_baseline(bench: Bench, host_count: int, set_name: str) -> list[Measurement]:
    """The same provisioning by hand (`bench/baseline.sh provision`), node by node."""
    packages = package_set(set_name)
    weights = synthetic_weights(WEIGHTS_BYTES)
    with fresh_lab(host_count, bench.deadline, bench.log) as hosts:
        inputs = _baseline_inputs(hosts, packages, weights, "bench-weights")
        with TrafficMeter([host.name for host in hosts]) as meter:
            run = run_baseline("provision", inputs)
    measurement = _measurement("provisioning", host_count, set_name, [run.seconds], meter, tool=BASELINE)
    copies = run.phase_seconds("copy_weights")
    measurement.weights_mb_per_s_per_node = WEIGHTS_BYTES / 1e6 / statistics.median(copies) if copies else None
    measurement.details["phases"] = run.phases
    bench.log(f"by hand, provisioning {host_count} hosts ({set_name}): {run.seconds:.1f} s")
    return [measurement]


# --- helpers ------------------------------------------------------------------------------------


def _up_to_completion(project: BenchProject, names: list[str], what: str, host_count: int) -> Measurement:
    with TrafficMeter(names) as meter:
        started = time.monotonic()
        project.run("up", "--yes")
        up_seconds = time.monotonic() - started
        outputs = project.outputs()
        _first_completion(outputs["openai_base_url"], outputs["api_key"])
        seconds = time.monotonic() - started
    resources = project.resources()
    measurement = _measurement(what, host_count, FULL, [seconds], meter)
    measurement.details |= {
        "pulumi_up_seconds": round(up_seconds, 1),
        "step_seconds": _step_seconds(resources),
        "stack_downloaded_bytes": _downloaded_bytes(resources),
    }
    return measurement


def _release_outage(bench: Bench, project: BenchProject, host_count: int) -> Measurement:
    """A changed vLLM setting rolled out to the serving cluster (the serving release restarts vLLM
    and verifies it): the `up`'s time, and in `details` the longest the endpoint did not answer,
    which is what its users see of an upgrade."""
    outputs = project.outputs()
    project.run("config", "set", "--path", "vllm.max_model_len", "512")
    with OutageMeter(outputs["openai_base_url"], outputs["api_key"]) as outage:
        seconds = project.timed("up", "--yes")
    bench.log(f"release of a changed vLLM setting: {seconds:.1f} s, endpoint silent {outage.longest_gap:.1f} s at most")
    return Measurement(
        "release of a changed vLLM setting", host_count, FULL, STACK, [seconds],
        details={"longest_outage_seconds": round(outage.longest_gap, 1), "failed_polls": outage.failures},
        note=f"endpoint silent {outage.longest_gap:.0f} s at most",
    )  # fmt: skip


def _noop(bench: Bench, project: BenchProject, host_count: int, set_name: str, suffix: str) -> list[Measurement]:
    """`pulumi preview` and `pulumi up --yes` with nothing changed, `bench.runs` times each."""
    previews, ups, changes = [], [], []
    for _ in range(bench.runs):
        previews.append(project.timed("preview"))
        ups.append(project.timed("up", "--yes"))
        changes.append(project.last_changes())
    up = Measurement(f"no-op up{suffix}", host_count, set_name, STACK, ups, details={"resource_changes": changes})
    changed = [change for change in changes if set(change) - {"same"}]
    if changed:
        up.note = f"not a no-op: {changed[0]}"
    bench.log(f"no-op up{suffix}: {up.seconds:.1f} s, preview {statistics.median(previews):.1f} s")
    measured = [Measurement(f"no-op preview{suffix}", host_count, set_name, STACK, previews), up]
    if host_count == NOOP_TARGET_HOSTS:
        project.use_bytecode_cache(False)
        uncached = [project.timed("up", "--yes") for _ in range(bench.runs)]
        project.use_bytecode_cache(True)
        measured.append(Measurement(f"no-op up{suffix}, no bytecode cache", host_count, set_name, STACK, uncached,
                                    note="PYTHONDONTWRITEBYTECODE=1, as this machine's environment sets it"))
    return measured


def _measurement(what, host_count, set_name, samples, meter: TrafficMeter, tool: str = STACK) -> Measurement:
    traffic = meter.traffic
    return Measurement(
        what, host_count, set_name, tool, [round(sample, 2) for sample in samples],
        registry_bytes=traffic.registry_bytes,
        pushed_bytes_per_node=traffic.pushed_per_node,
        details={"pushed_bytes": traffic.pushed_bytes},
    )  # fmt: skip


def _baseline_inputs(hosts, packages: PackageSet, model: Path, served_name: str) -> BaselineInputs:
    return BaselineInputs(
        hosts=hosts, wheelhouse=packages.folder, model=model, served_name=served_name,
        api_key=secrets.token_hex(24), ray_token=secrets.token_hex(24), plugin_wheels=packages.plugin_wheels,
    )  # fmt: skip


def _first_completion(base_url: str, api_key: str) -> None:
    """Retries until the endpoint serves a completion (both sides report ready before that)."""
    deadline = time.monotonic() + COMPLETION_TIMEOUT
    while True:
        try:
            if chat(base_url, api_key, SERVED_NAME, "Hello!", max_tokens=8):
                return
        except Exception as error:  # any failure means "not serving yet" until the deadline
            if time.monotonic() >= deadline:
                raise BenchError(f"no completion from {base_url} within {COMPLETION_TIMEOUT} s: {error}") from error
        time.sleep(1)


def _outputs_of(resources: list[dict], kind: str) -> dict[str, dict]:
    """{resource name: outputs} of the resources whose type contains `kind`."""
    return {r["urn"].split("::")[-1]: r.get("outputs") or {} for r in resources if kind in r.get("type", "")}


def _step_seconds(resources: list[dict]) -> dict[str, float]:
    """How long each node step took on its host: where a cold up spends its time."""
    return {name: outputs["seconds"] for name, outputs in _outputs_of(resources, "NodeStep").items() if outputs.get("seconds")}


def _stack_weights_rate(resources: list[dict]) -> float | None:
    """Median MB/s over the nodes' model-weights steps: bytes pushed / the step's time (push,
    checksum verification on the node and the check before, as the stack does them)."""
    rates = [
        outputs["pushed_bytes"] / 1e6 / outputs["seconds"]
        for name, outputs in _outputs_of(resources, "NodeStep").items()
        if name.endswith("-model-weights") and outputs.get("pushed_bytes") and outputs.get("seconds")
    ]
    return statistics.median(rates) if rates else None


def _downloaded_bytes(resources: list[dict]) -> int:
    """What the stack's artifact resources fetched from the registries in this update."""
    return sum(outputs.get("downloaded_bytes") or 0 for outputs in _outputs_of(resources, "artifacts").values())


def _memory_available() -> int:
    with open("/proc/meminfo") as meminfo:
        return next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable"))
