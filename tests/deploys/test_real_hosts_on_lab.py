"""The hosts users have, on lab hosts that refuse root logins: the stack's commands go through sudo
(password-less, or with a password that never reaches a command line), a user without sudo gets
one error naming the host and the fix, and a node with a route out installs the lock from an index
on the lab network, hash-checked."""

from __future__ import annotations

import html
import http.server
import subprocess
import threading
from pathlib import Path

import pytest

from artifacts import manifest as manifests
from artifacts.packages.lockfile import normalize_name
from deploys.layout import venv_path
from deploys.runner import SshTarget, run_deploy
from deploys.specs import PackageIndex, PythonEnvSpec, TreeSpec
from lab.layout import LabSpec
from lab.rootfs import NO_SUDO_USER, PASSWORD_SUDO_USER, SUDO_PASSWORD
from stack.hosts import host_key_policy
from tests.support.lab_nodes import run_on
from tests.support.small_wheelhouse import small_wheelhouse

pytestmark = pytest.mark.lab

PULL_VENV = venv_path("pulltest-" + "0" * 16)
"""A venv of its own beside the stack's (kept: `keep_previous` below spares every sibling)."""


def target(host, user: str) -> SshTarget:
    return SshTarget(name=host.name, address=str(host.address), user=user, port=22, key_file=str(host.ssh.key_file), sudo=True)


def whoami_as_root(host, **_arguments) -> dict:
    """Observes `id -un` through the host's sudo (what every fact and operation does)."""
    from pyinfra.facts.server import Command

    return {"user": host.get_fact(Command, "id -un")}


def record_processes(marker: str):
    """A deploy: while it runs as root, every command line on the node goes to `marker`."""
    from pyinfra.operations import server

    server.shell(name="Record the node's command lines", commands=[f"ps -eo args > {marker}"])


def test_sudo_user_reaches_root_and_a_user_without_sudo_gets_one_error_with_the_fix(lab_nodes):
    host = lab_nodes[1]
    keys = host_key_policy(host)
    allowed = run_deploy([target(host, host.ssh.user)], None, observe=whoami_as_root, host_keys=keys)[host.name]
    assert allowed.error is None and allowed.facts == {"user": "root"}
    refused = run_deploy([target(host, NO_SUDO_USER)], None, observe=whoami_as_root, host_keys=keys)[host.name]
    assert refused.reachable and refused.facts == {}
    assert refused.error.startswith(f"{host.name}: sudo refused for {NO_SUDO_USER} (")
    assert "NOPASSWD" in refused.error and "sudo_password" in refused.error
    # Root itself may not log in at all: sshd refuses it with the same key.
    root = subprocess.run(
        ["ssh", "-i", str(host.ssh.key_file), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", f"root@{host.address}", "true"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert root.returncode == 255 and "Permission denied" in root.stderr


def test_a_sudo_password_works_and_never_appears_in_a_command_line_or_stays_on_the_node(lab_nodes):
    host = lab_nodes[0]
    keys = host_key_policy(host)
    user = target(host, PASSWORD_SUDO_USER)
    wrong = run_deploy([user], None, observe=whoami_as_root, host_keys=keys, sudo_password="not-the-password")[host.name]
    assert wrong.error and "sudo refused for" in wrong.error and "not-the-password" not in wrong.error
    without = run_deploy([user], None, observe=whoami_as_root, host_keys=keys)[host.name]
    assert without.error and "a password is required" in without.error

    marker = "/root/rvs-sudo-test-processes"
    right = run_deploy([user], record_processes, observe=whoami_as_root, host_keys=keys, sudo_password=SUDO_PASSWORD,
                       marker=marker)[host.name]  # fmt: skip
    assert right.error is None and right.facts == {"user": "root"}
    processes = run_on(host.name, f"cat {marker}; rm -f {marker}")
    assert "sudo -H -A -k" in processes  # the recording ran under the askpass sudo it checks
    assert SUDO_PASSWORD not in processes
    leftovers = run_on(host.name, f"ls -a ~{PASSWORD_SUDO_USER}")
    assert ".ray-vllm-stack-sudo" not in leftovers


class IndexServer:
    """A PEP 503 index of some wheels on the lab's bridge, as a node's mirror, serving from a thread
    of the test (bound before it starts, so there is nothing to wait for); records each request."""

    def __init__(self, wheels: list[Path], address: str):
        pages: dict[str, bytes] = {}
        for wheel in wheels:
            project = normalize_name(wheel.name.split("-")[0])
            link = f'<a href="/files/{html.escape(wheel.name)}">{html.escape(wheel.name)}</a>\n'
            pages[f"/simple/{project}/"] = pages.get(f"/simple/{project}/", b"") + link.encode()
            pages[f"/files/{wheel.name}"] = wheel.read_bytes()
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                requests.append(f"{self.client_address[0]} GET {self.path}")
                body = pages.get(self.path)
                self.send_response(200 if body is not None else 404)
                kind = "text/html" if self.path.startswith("/simple/") else "application/octet-stream"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *_):
                pass

        self.server = http.server.ThreadingHTTPServer((address, 0), Handler)
        self.url = f"http://{address}:{self.server.server_address[1]}/simple"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def pull_spec(wheelhouse, index_url: str) -> PythonEnvSpec:
    pushed = (wheelhouse.lock_file, wheelhouse.installer)
    lock_only = manifests.render({name: manifests.parse(wheelhouse.manifest)[name] for name in pushed})
    tree = TreeSpec(source=wheelhouse.path, destination="/opt/ray-vllm-stack/pull-test/wheelhouse", manifest=lock_only,
                    verify_content=False)  # fmt: skip
    return PythonEnvSpec(wheelhouse=tree, index=PackageIndex(url=index_url), lock_key=wheelhouse.key,
                         lock_file=wheelhouse.lock_file, installer=wheelhouse.installer, packages=wheelhouse.packages, venv=PULL_VENV,
                         keep_previous=1000, interpreter="python3")  # fmt: skip


def test_a_node_with_a_route_out_installs_the_lock_from_an_index_and_refuses_a_wheel_it_does_not_pin(
    lab_nodes, tmp_path
):
    host = lab_nodes[1]
    wheelhouse = small_wheelhouse()
    wheels = sorted(Path(wheelhouse.path).glob("*.whl"))
    run_on(host.name, f"rm -rf /opt/ray-vllm-stack/pull-test {PULL_VENV}")
    tampered_dir = tmp_path / "tampered-wheels"
    tampered_dir.mkdir()
    tampered = []
    for wheel in wheels:  # same names, other bytes: what a compromised mirror would serve
        copy = tampered_dir / wheel.name
        copy.write_bytes(wheel.read_bytes() + b"\0")
        tampered.append(copy)
    bridge = LabSpec().bridge_address
    for wheels_served, expect_ok in ((tampered, False), (wheels, True)):
        server = IndexServer(wheels_served, bridge)
        try:
            spec = pull_spec(wheelhouse, server.url)
            result = run_deploy([target(host, host.ssh.user)], "deploys.node:python_env", observe="deploys.observe:python_env",
                                host_keys=host_key_policy(host), spec=spec)[host.name]  # fmt: skip
        finally:
            server.stop()
        # The node fetched the wheels itself, from the index.
        assert any(line.startswith(f"{host.address} GET /files/six-1.17.0") for line in server.requests), (
            result.error, server.requests)
        if expect_ok:
            assert result.error is None
            freeze = run_on(host.name, f"{PULL_VENV}/bin/python -m pip freeze")
            assert "six==1.17.0" in freeze and "idna==3.10" in freeze
        else:
            assert result.error and "Hash mismatch for `six==1.17.0`" in result.error
    run_on(host.name, f"rm -rf /opt/ray-vllm-stack/pull-test {PULL_VENV}")
