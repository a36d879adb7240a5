"""The provisioning steps by name: what applies each one, what observes it, what its desired state
looks like. The Pulumi providers look steps up here by the name stored in their inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from deploys import node, observe, services
from deploys.specs import (
    ModelWeightsSpec,
    NvidiaSpec,
    PythonEnvSpec,
    PythonRuntimeSpec,
    RuntimeEnvSpec,
    Spec,
    SystemPackagesSpec,
)


@dataclass(frozen=True)
class Step:
    name: str
    apply: Callable[..., None] | None
    """A pyinfra deploy taking `spec=`; None for a step that only observes."""
    observe: Callable[..., dict]
    spec_type: type[Spec] | None
    repairs_drift: bool = True
    """Whether an observation that differs from the one after the last apply makes the next `up`
    apply again (facts such as CPU count only report)."""
    retire: Callable[..., None] | None = None
    """A pyinfra deploy taking `spec=` and `purge_cache=`, run when the step's resource is deleted:
    it removes what the step installed, and its caches only when asked."""


STEPS: dict[str, Step] = {
    step.name: step
    for step in (
        Step("facts", None, observe.host_facts, None, repairs_drift=False),
        Step("nvidia-preflight", node.nvidia_preflight, observe.nvidia_driver, NvidiaSpec),
        Step("system-packages", node.system_packages, observe.system_packages, SystemPackagesSpec),
        Step("python-runtime", node.python_runtime, observe.python_runtime, PythonRuntimeSpec),
        Step("python-env", node.python_env, observe.python_env, PythonEnvSpec, retire=node.retire_python_env),
        Step("model-weights", node.model_weights, observe.model_weights, ModelWeightsSpec, retire=node.retire_model_weights),
        Step("runtime-env", node.runtime_env, observe.runtime_env, RuntimeEnvSpec, retire=node.retire_runtime_env),
        *(
            Step(unit, services.service_running, services.service_state, services.ServiceSpec, retire=services.service_removed)
            for unit in ("ray-head", "ray-worker", "vllm")
        ),
    )
}
