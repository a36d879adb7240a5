"""CPU communicator that uses the shared-memory fast path only within one /dev/shm."""

from __future__ import annotations

import torch.distributed
from vllm.distributed.device_communicators.cpu_communicator import CpuCommunicator
from vllm.logger import init_logger

from vllm_ray_cpu.shm_identity import local_shm_identity, ranks_share_shm

logger = init_logger(__name__)


class ShmAwareCpuCommunicator(CpuCommunicator):
    """vLLM 0.32's check that gates the shared-memory path only compares the group's shm name,
    which ranks on different hosts share as well; add the check that they share /dev/shm, so
    a cross-host group falls back to torch.distributed (gloo over TCP)."""

    def _all_group_ranks_share_shm_group_name(self) -> bool:
        # The base check returns the same value on every rank (it all-gathers), so either every
        # rank or none enters the second collective below.
        if not super()._all_group_ranks_share_shm_group_name():
            return False
        identities: list[object] = [None] * self.world_size
        torch.distributed.all_gather_object(
            identities, local_shm_identity(), group=self.device_group
        )
        shared = ranks_share_shm(identities)
        if not shared:
            logger.info(
                "Group %s spans more than one /dev/shm; using gloo instead of shared memory.",
                self.unique_name,
            )
        return shared
