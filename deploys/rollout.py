"""A release of the cluster's services: switched host by host in start order, verified end to end,
or every host put back on the last verified release.

    observed = roll_out(cluster, spec, secrets)     # {host: {unit: state}}; ReleaseError after a rollback

The packages, the interpreter and the weights of a new release are already in place beside the
running ones (versioned venvs and model folders), so switching is only writing units and
restarting: the Ray head (its workers follow it), each worker, vLLM (restarted whenever a Ray unit
restarted under it), the API front, then the endpoint must answer `verify_probes` times. Only then
is the release recorded on every host as the one to return to. A failure at any point restores
that record on every host, in the same order, and waits for it to answer: `up` fails with the
reason while the previous release serves. Ray's processes on all nodes run one venv and vLLM's
stages run in them, so the whole cluster goes back together, never one unit alone.

Runs on the controller (the Pulumi provider): each phase is one `run_deploy` over its hosts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from deploys.runner import HostKeyPolicy, HostResult, SshTarget, run_deploy
from deploys.specs import ReleaseSpec, ReleaseUnit, ServiceSpec

RAY_ROLES = ("ray-head", "ray-worker")


class ReleaseError(RuntimeError):
    """The release did not serve; the message says why and what the hosts run now."""


class _PhaseFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Cluster:
    """How to reach every host of the release."""

    targets: dict[str, SshTarget]
    host_keys: dict[str, HostKeyPolicy]
    sudo_password: str | None = None

    def run(
        self, hosts: list[str], deploy: str | None, per_host: dict[str, dict], log_name: str, **data
    ) -> dict[str, HostResult]:
        """`run_deploy` on `hosts`, one call per host-key policy (the lab's differs from real hosts')."""
        groups: dict[HostKeyPolicy, list[SshTarget]] = defaultdict(list)
        for name in hosts:
            groups[self.host_keys[name]].append(self.targets[name])
        results: dict[str, HostResult] = {}
        for policy, targets in groups.items():
            results |= run_deploy(
                targets, deploy, host_keys=policy, log_name=log_name, per_host=per_host,
                sudo_password=self.sudo_password, **data,
            )  # fmt: skip
        return results


def roll_out(cluster: Cluster, spec: ReleaseSpec, secrets: dict[str, str]) -> dict[str, Any]:
    """Switches to `spec` and verifies it; {host: {unit: state}} afterwards. On failure every
    host goes back to the last verified release and ReleaseError says why."""
    try:
        ray_invocations: list[str] = []
        for index, phase in enumerate(spec.phases):
            started_after = ",".join(sorted(ray_invocations)) if ray_invocations else None
            observed = _run_phase(cluster, index, phase, secrets, started_after)
            ray_invocations += [
                state["invocation"] or "-"
                for unit in phase if unit.role in RAY_ROLES
                for state in [observed[unit.host][unit.service.unit]]
            ]  # fmt: skip
        _check(cluster.run([spec.units[-1].host], "deploys.services:endpoint_verified", {}, "release-verify",
                           spec=spec.units[-1].service, probes=spec.verify_probes))  # fmt: skip
    except _PhaseFailed as failure:
        raise ReleaseError(f"{failure}. {_restore(cluster, spec)}") from None
    _check(cluster.run(spec.hosts, "deploys.services:release_verified", _units(spec), "release-record"))
    return observe_release(cluster, spec)


def observe_release(cluster: Cluster, spec: ReleaseSpec) -> dict[str, Any]:
    """{host: {unit: state}} as the hosts are now (what `pulumi refresh` records)."""
    results = cluster.run(spec.hosts, None, _units(spec), "release-observe", observe="deploys.services:release_state")
    problems = [result.error for result in results.values() if result.error]
    if problems:
        raise ReleaseError("; ".join(problems))
    return {name: result.facts for name, result in sorted(results.items())}


def retire_release(cluster: Cluster, spec: ReleaseSpec, purge_cache: bool) -> dict[str, str]:
    """Stops and removes every unit of the release; {host: error} of those that could not be
    reached (a reachable host that fails raises)."""
    results = cluster.run(spec.hosts, "deploys.services:release_removed", _units(spec), "release-remove",
                          purge_cache=purge_cache)  # fmt: skip
    failed = [result.error for result in results.values() if result.error and result.reachable]
    if failed:
        raise ReleaseError("; ".join(failed))
    return {name: result.error for name, result in results.items() if result.error}


def _run_phase(
    cluster: Cluster, index: int, phase: tuple[ReleaseUnit, ...], secrets: dict[str, str], started_after: str | None
) -> dict[str, dict]:
    hosts = list(dict.fromkeys(unit.host for unit in phase))
    per_host = {
        host: {
            "units": [unit.service for unit in phase if unit.host == host],
            "started_after": {unit.service.unit: started_after for unit in phase
                              if unit.host == host and unit.role not in RAY_ROLES and started_after},
        }
        for host in hosts
    }  # fmt: skip
    roles = "+".join(dict.fromkeys(unit.role for unit in phase))
    results = cluster.run(hosts, "deploys.services:release_running", per_host, f"release-{index + 1}-{roles}",
                          observe="deploys.services:release_state", secrets=secrets)  # fmt: skip
    _check(results)
    return {name: result.facts for name, result in results.items()}


def _check(results: dict[str, HostResult]) -> None:
    problems = [result.error for result in results.values() if result.error]
    if problems:
        raise _PhaseFailed("; ".join(problems))


def _restore(cluster: Cluster, spec: ReleaseSpec) -> str:
    """Every host back on the last verified release, phase by phase; says how that went."""
    problems = []
    for index, phase in enumerate(spec.phases):
        hosts = list(dict.fromkeys(unit.host for unit in phase))
        per_host = {host: {"units": [unit.service for unit in phase if unit.host == host]} for host in hosts}
        results = cluster.run(hosts, "deploys.services:release_restored", per_host, f"release-restore-{index + 1}")
        problems += [result.error for result in results.values() if result.error]
    if problems:
        return f"Putting the last verified release back failed too: {'; '.join(problems)}"
    return "Every host is back on the last verified release (units it did not have were removed)."


def _units(spec: ReleaseSpec) -> dict[str, dict[str, list[ServiceSpec]]]:
    return {host: {"units": spec.units_on(host)} for host in spec.hosts}
