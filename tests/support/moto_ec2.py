"""A local EC2 API for the cloud tests: `moto_server` on a free loopback port, with instance types
checked against AWS's list (else RunInstances accepts made-up ones), and fake credentials in the
environment so boto3's default chain finds them (nothing of the real account is ever read)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.request import urlopen

import boto3

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""moto accepts any; these keep boto3 from looking for a profile, SSO or an instance role."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def moto_server(log: Path) -> Iterator[str]:
    """Starts moto_server and yields its endpoint URL; stops it (by its own pid) afterwards."""
    port = free_port()
    env = {**os.environ, **FAKE_CREDENTIALS, "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true"}
    server = Path(sys.executable).parent / "moto_server"
    with log.open("wb") as out:
        process = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urlopen(f"{url}/moto-api/", timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def reset(url: str) -> None:
    """Forgets every resource moto holds: each test starts from an empty account."""
    urlopen(f"{url}/moto-api/reset", data=b"", timeout=10).close()


MOTO_AMI = "ami-12c6146b"
"""An image moto knows (its default set); AWS's AMIs are per region and per account view."""


def on_moto(project, endpoint: str) -> None:
    project.env.update(FAKE_CREDENTIALS)
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        project.env.pop(name, None)
    project.ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=endpoint, **_keys())


def _keys() -> dict:
    return {"aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "aws_session_token": FAKE_CREDENTIALS["AWS_SESSION_TOKEN"]}  # fmt: skip


def instances(ec2) -> dict[str, dict]:
    """Instance id -> {state, type, tags} of every instance moto holds."""
    found = {}
    for reservation in ec2.describe_instances()["Reservations"]:
        for item in reservation["Instances"]:
            tags = {tag["Key"]: tag["Value"] for tag in item.get("Tags", [])}
            found[item["InstanceId"]] = {"state": item["State"]["Name"], "type": item["InstanceType"], "tags": tags}
    return found


def running(ec2) -> dict[str, dict]:
    return {key: value for key, value in instances(ec2).items() if value["state"] == "running"}
