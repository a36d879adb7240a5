"""Whether the ranks of a process group can reach one another through /dev/shm.

vLLM's CPU communicator opens a shared-memory segment per group under a name all ranks agree
on; ranks on different hosts agree on the name too but each opens its own /dev/shm, and the
group fails with `open shm in SHMManager failed. errno: 2`. One kernel boot and one /dev/shm
mount (device and inode) identify a shared-memory namespace; network namespaces do not matter.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

ShmIdentity = tuple[str, int, int]  # (kernel boot id, st_dev, st_ino of the shm mount)

BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
SHM_DIR = "/dev/shm"


def local_shm_identity(boot_id_file: str = BOOT_ID_FILE, shm_dir: str = SHM_DIR) -> ShmIdentity:
    with open(boot_id_file) as stream:
        boot_id = stream.read().strip()
    stat = os.stat(shm_dir)
    return (boot_id, stat.st_dev, stat.st_ino)


def ranks_share_shm(identities: Sequence[ShmIdentity]) -> bool:
    """True when every rank of the group reported the same shared-memory identity."""
    return len({tuple(identity) for identity in identities}) == 1
