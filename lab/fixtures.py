"""pytest fixtures for tests that need lab hosts. Use them from a conftest.py:

    from lab.fixtures import lab_hosts  # noqa: F401
"""

import os

import pytest

from lab import api
from lab.layout import Host

TEST_HOST_COUNT = 2


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
