"""The shipped instance-type table: equal to AWS's DescribeInstanceTypes answers (as moto records
them), and each row's GPUs what the planner gets."""

import pytest
from moto.ec2.models.instance_types import INSTANCE_TYPES as RECORDED

from cloud.instance_types import INSTANCE_TYPES, PRICE_SOURCE, PRICES_AS_OF, instance_type

REQUIRED = ("g5.xlarge", "g5.12xlarge", "g6.xlarge", "g6e.xlarge", "g6e.12xlarge", "p4d.24xlarge", "p5.48xlarge")


def test_the_required_types_are_tabled():
    assert set(REQUIRED) <= set(INSTANCE_TYPES)


@pytest.mark.parametrize("name", sorted(INSTANCE_TYPES))
def test_each_row_equals_describe_instance_types(name):
    row, recorded = INSTANCE_TYPES[name], RECORDED[name]
    gpus = [(gpu["Name"], gpu["Count"], gpu["MemoryInfo"]["SizeInMiB"]) for gpu in recorded.get("GpuInfo", {}).get("Gpus", [])]
    assert (row.gpu_name, row.gpu_count, row.gpu_memory_mib) == (gpus[0] if gpus else ("", 0, 0))
    assert (row.vcpus, row.memory_mib) == (recorded["VCpuInfo"]["DefaultVCpus"], recorded["MemoryInfo"]["SizeInMiB"])
    assert 0.1 < row.hourly_usd < 200


def test_gpu_memory_in_the_planners_unit():
    assert instance_type("p5.48xlarge").gpu_memory_gb == 80.0
    assert instance_type("g6e.xlarge").gpu_memory_gb == 44.7  # AWS's usable 45776 MiB, not the marketed 48 GB
    assert instance_type("m5.large") is None


def test_prices_are_dated():
    assert PRICES_AS_OF == "2025-06" and PRICES_AS_OF in PRICE_SOURCE and "us-east-1" in PRICE_SOURCE
