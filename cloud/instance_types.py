"""What an EC2 instance type brings, known before anything exists, so `pulumi preview` can plan.

The planner needs each host's GPUs at preview, when no instance runs yet; asking AWS then would
need credentials (and a network) for a preview. So the stack ships this table: one row per type it
accepts, and a config naming any other type is refused at preview, naming the known ones.

Sources, dated:
- GPU name, GPU count, memory per GPU (MiB), vCPUs and RAM (MiB): `DescribeInstanceTypes` as
  recorded in moto 5.2.5's `moto/ec2/resources/instance_types.json.gz` (AWS's own answers), read on
  2026-12-03 (a test keeps the rows equal to it). AWS reports the usable memory of a "24 GB" A10G
  or L4 as 22888 MiB and of a "48 GB" L40S as 45776 MiB: the planner gets those, not the marketing number.
- `hourly_usd`: AWS's public On-Demand list price, Linux, us-east-1, as of `PRICES_AS_OF` (p4d and
  p5 after AWS's June 2025 price reduction). Entered by hand without access to AWS's price list API:
  an estimate for the `hourly_cost` output, not a bill. Spot prices vary by the hour and are not
  tabled; a spot host is estimated at its On-Demand price (an upper bound).
"""

from __future__ import annotations

from dataclasses import dataclass

PRICES_AS_OF = "2025-06"
PRICE_REGION = "us-east-1"
PRICE_SOURCE = f"AWS EC2 On-Demand list prices, Linux, {PRICE_REGION}, as of {PRICES_AS_OF}"


@dataclass(frozen=True)
class InstanceType:
    name: str
    gpu_name: str
    gpu_count: int
    gpu_memory_mib: int
    """Per GPU, as DescribeInstanceTypes reports it."""
    vcpus: int
    memory_mib: int
    hourly_usd: float
    """On-Demand, `PRICE_REGION`, as of `PRICES_AS_OF`."""

    @property
    def gpu_memory_gb(self) -> float:
        """GiB per GPU, the unit of `hosts[].gpus[].memory_gb` and the planner."""
        return round(self.gpu_memory_mib / 1024, 2)


INSTANCE_TYPES: dict[str, InstanceType] = {
    row.name: row
    for row in (
        InstanceType("g5.xlarge", "A10G", 1, 22888, 4, 16384, 1.006),
        InstanceType("g5.2xlarge", "A10G", 1, 22888, 8, 32768, 1.212),
        InstanceType("g5.12xlarge", "A10G", 4, 22888, 48, 196608, 5.672),
        InstanceType("g6.xlarge", "L4", 1, 22888, 4, 16384, 0.8048),
        InstanceType("g6.12xlarge", "L4", 4, 22888, 48, 196608, 4.6016),
        InstanceType("g6e.xlarge", "L40S", 1, 45776, 4, 32768, 1.861),
        InstanceType("g6e.12xlarge", "L40S", 4, 45776, 48, 393216, 10.493),
        InstanceType("p4d.24xlarge", "A100", 8, 40960, 96, 1179648, 21.96),
        InstanceType("p5.48xlarge", "H100", 8, 81920, 192, 2097152, 55.04),
        # CPU only: a CPU node serves small models with vLLM's CPU build (the lab's end-to-end test
        # maps such instances to its hosts).
        InstanceType("m7i.xlarge", "", 0, 0, 4, 16384, 0.2016),
        InstanceType("m7i.2xlarge", "", 0, 0, 8, 32768, 0.4032),
    )
}


def instance_type(name: str) -> InstanceType | None:
    return INSTANCE_TYPES.get(name)


def known_types() -> str:
    return ", ".join(INSTANCE_TYPES)
