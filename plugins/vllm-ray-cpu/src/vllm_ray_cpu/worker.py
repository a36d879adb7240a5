"""CPU worker whose later pipeline stages can run with --enforce-eager."""

from __future__ import annotations

from vllm.distributed.parallel_state import get_pp_group
from vllm.v1.worker.cpu_worker import CPUWorker
from vllm.v1.worker.worker_base import CompilationTimes


class PipelineCpuWorker(CPUWorker):
    """vLLM 0.32's CPU model runner allocates the buffer that receives the previous stage's
    hidden states only inside its compile warm-up, which --enforce-eager skips; every stage
    after the first then fails its first step with `assert self.intermediate_tensors is not
    None`. Allocate it the way the runner's own dummy run does."""

    def compile_or_warm_up_model(self) -> CompilationTimes:
        times = super().compile_or_warm_up_model()
        runner = self.model_runner
        if runner.intermediate_tensors is None and not get_pp_group().is_first_rank:
            runner.intermediate_tensors = runner.model.make_empty_intermediate_tensors(
                batch_size=runner.max_num_tokens,
                dtype=runner.model_config.dtype,
                device=runner.device,
            )
        return times
