"""Shared fixtures: the session's lab hosts, and a valid stack config as raw data, the way
`Pulumi.<stack>.yaml` gives it. Also the CI rule that no test may skip (`RVS_REQUIRE_LAB=1`)."""

import os
from pathlib import Path

import pytest

from deploys.specs import Spec
from lab import api
from lab.layout import Host
from stack.config import HostConfig
from tests.support.lab_nodes import host_configs, node_step_specs

TEST_HOST_COUNT = 2
REQUIRE_EVERY_TEST = os.environ.get("RVS_REQUIRE_LAB") == "1"
"""Set by `.ci/run`: a skipped test is a test that did not run, so under CI a skip is a failure."""
GPU_ONLY_TESTS: frozenset[str] = frozenset()
"""Node ids of tests that need a GPU, the only skips CI allows. None so far: the GPU path is
exercised by rendering, recorded facts and preview tests, which run everywhere."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if REQUIRE_EVERY_TEST and report.skipped and not hasattr(report, "wasxfail") and item.nodeid not in GPU_ONLY_TESTS:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under RVS_REQUIRE_LAB=1, where every test must run ({reason})"
    return report


@pytest.fixture(scope="session")
def lab_hosts() -> list[Host]:
    """A fresh lab of two hosts (lab1 head, lab2 worker) for the session, removed at its end.

    Any lab already up is replaced, so every session starts from clean host disks.
    """
    if os.geteuid() != 0:
        pytest.skip("lab hosts need root (namespaces, mounts, interfaces): run pytest as root")
    api.down()
    hosts = api.up(hosts=TEST_HOST_COUNT)
    yield hosts
    api.down()


@pytest.fixture(scope="session")
def lab_nodes(lab_hosts) -> list[HostConfig]:
    """The session's lab hosts as the stack's host configs."""
    return host_configs(len(lab_hosts))


@pytest.fixture(scope="session")
def node_specs_on_lab(lab_nodes) -> dict[str, dict[str, Spec]]:
    """Per lab host, each node step's spec in table order."""
    return node_step_specs(lab_nodes)


@pytest.fixture
def ssh_key(tmp_path: Path) -> Path:
    key = tmp_path / "id_ed25519"
    key.write_text("not a real key; validation only checks that the file exists\n")
    return key


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    model = tmp_path / "tiny-model"
    model.mkdir()
    (model / "config.json").write_text('{"num_hidden_layers": 4}')
    return model


@pytest.fixture
def raw_config(ssh_key: Path, model_dir: Path) -> dict:
    """Two CPU hosts, pipeline parallelism 2, Debian 12 without a route out: the lab's shape."""

    def host(name: str, address: str, role: str) -> dict:
        ssh = {"user": "root", "port": 22, "key_file": str(ssh_key)}
        return {"name": name, "address": address, "ssh": ssh, "role": role, "accelerator": "cpu",
                "os": "debian-12", "route_out": False}  # fmt: skip

    return {
        "hosts": [host("lab1", "10.201.0.11", "head"), host("lab2", "10.201.0.12", "worker")],
        "model": {"path": str(model_dir), "served_name": "tiny"},
        "parallelism": {"pipeline_size": 2},
    }


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory) -> str:
    """A local EC2 API (`moto_server` on a free loopback port) for the session's cloud tests."""
    from tests.support.moto_ec2 import moto_server

    with moto_server(tmp_path_factory.mktemp("moto") / "moto_server.log") as url:
        yield url


@pytest.fixture
def moto_ec2(moto_endpoint, monkeypatch) -> str:
    """An empty account on the session's moto_server, and fake credentials in boto3's default chain."""
    from tests.support.moto_ec2 import FAKE_CREDENTIALS, reset

    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    reset(moto_endpoint)
    return moto_endpoint
