"""The provisioning steps by name: what applies each one, what observes it, what its desired state
looks like. The Pulumi providers look steps up here by the name stored in their inputs.

Deploys are named (`module:function`), not imported: the Pulumi program and its providers only
look steps up, and importing pyinfra (with gevent and paramiko) would cost every `pulumi`
command about half a second per Python process. `deploys.worker` imports them where they run.
"""

from __future__ import annotations

from dataclasses import dataclass

from deploys.specs import (
    RELEASE_ROLES,
    FirewallSpec,
    ModelWeightsSpec,
    NvidiaSpec,
    PlatformSpec,
    PythonEnvSpec,
    PythonRuntimeSpec,
    RuntimeEnvSpec,
    ServiceSpec,
    Spec,
    SystemPackagesSpec,
)


@dataclass(frozen=True)
class Step:
    name: str
    apply: str | None
    """The pyinfra deploy taking `spec=`; None for a step that only observes."""
    observe: str
    """The function returning what the host looks like (`(host, spec=) -> dict`)."""
    spec_type: type[Spec] | None
    repairs_drift: bool = True
    """Whether an observation that differs from the one after the last apply makes the next `up`
    apply again (facts such as CPU count only report)."""
    retire: str | None = None
    """A pyinfra deploy taking `spec=` and `purge_cache=`, run when the step's resource is deleted:
    it removes what the step installed, and its caches only when asked."""


STEPS: dict[str, Step] = {
    step.name: step
    for step in (
        Step("facts", None, "deploys.observe:host_facts", None, repairs_drift=False),
        Step(
            "os-preflight", "deploys.node:os_preflight", "deploys.observe:os_platform", PlatformSpec,
            retire="deploys.node:retire_os_preflight",
        ),
        Step("nvidia-preflight", "deploys.node:nvidia_preflight", "deploys.observe:nvidia_driver", NvidiaSpec),
        Step("system-packages", "deploys.node:system_packages", "deploys.observe:system_packages", SystemPackagesSpec),
        Step(
            "firewall", "deploys.firewall:firewall", "deploys.firewall:firewall_state", FirewallSpec,
            retire="deploys.firewall:retire_firewall",
        ),
        Step(
            "python-runtime", "deploys.node:python_runtime", "deploys.observe:python_runtime", PythonRuntimeSpec,
            retire="deploys.node:retire_python_runtime",
        ),
        Step(
            "python-env", "deploys.node:python_env", "deploys.observe:python_env", PythonEnvSpec,
            retire="deploys.node:retire_python_env",
        ),
        Step(
            "model-weights", "deploys.node:model_weights", "deploys.observe:model_weights", ModelWeightsSpec,
            retire="deploys.node:retire_model_weights",
        ),
        Step(
            "runtime-env", "deploys.node:runtime_env", "deploys.observe:runtime_env", RuntimeEnvSpec,
            retire="deploys.node:retire_runtime_env",
        ),
        # One resource per unit, as stacks recorded them before the serving release
        # (`deploys.rollout`) took the units over: refreshed and deleted, never applied again.
        *(
            Step(
                unit, "deploys.services:service_running", "deploys.services:service_state", ServiceSpec,
                retire="deploys.services:unit_handed_over",
            )
            for unit in RELEASE_ROLES
        ),
    )
}  # fmt: skip
