"""Makes Ray report ids for our stage resource the way it does for GPUs.

vLLM's Ray workers look their platform's `ray_device_key` up in
`ray.get_runtime_context().get_accelerator_ids()`, but Ray 2.60 fills that dict only with the
resource names of the accelerators it knows (GPU, TPU, ...), so a custom resource raises
KeyError. The patch adds our resource, computed by the same Ray helper that computes the ids of
the built-in accelerators.
"""

from __future__ import annotations

import functools

from vllm_ray_cpu import RAY_RESOURCE

_PATCHED = "_vllm_ray_cpu_reports_stage_resource"


def report_stage_resource_ids() -> None:
    """Patches `RuntimeContext.get_accelerator_ids` once per process."""
    from ray.runtime_context import RuntimeContext

    original = RuntimeContext.get_accelerator_ids
    if getattr(original, _PATCHED, False):
        return

    @functools.wraps(original)
    def get_accelerator_ids(self: RuntimeContext) -> dict[str, list[str]]:
        ids = original(self)
        assigned = self.worker.get_accelerator_ids_for_accelerator_resource(
            RAY_RESOURCE, f"^{RAY_RESOURCE}_group_[0-9A-Za-z]+$"
        )
        ids[RAY_RESOURCE] = [str(i) for i in assigned]
        return ids

    setattr(get_accelerator_ids, _PATCHED, True)
    RuntimeContext.get_accelerator_ids = get_accelerator_ids
