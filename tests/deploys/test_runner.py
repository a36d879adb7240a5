"""The runner's per-host reporting, against addresses that refuse connections, and its limits on time
(no lab needed)."""

import socket
import subprocess
import time

import pytest

from deploys import node, observe, runner
from deploys.runner import DeployError, HostKeyPolicy, SshTarget, connection_data, run_deploy
from deploys.specs import PythonRuntimeSpec, TreeSpec

SPEC = PythonRuntimeSpec(
    version="3.11.2",
    glibc_floor="2.34",
    tree=TreeSpec(
        source="/c/python", destination="/opt/ray-vllm-stack/python/3.11.2", manifest="", verify_content=True
    ),
)


def test_unreachable_host_gets_an_error_naming_it(tmp_path):
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    hosts = [
        SshTarget(name=name, address="127.0.0.1", user="root", port=port, key_file=str(key))
        for name, port in (("ghost1", 1), ("ghost2", 2))
    ]
    results = run_deploy(hosts, node.python_runtime, observe=observe.python_runtime, spec=SPEC)
    for name, port in (("ghost1", 1), ("ghost2", 2)):
        result = results[name]
        assert result.error.startswith(f"{name}: cannot connect over SSH to root@127.0.0.1:{port}: ")
        assert not result.reachable and not result.changed and result.facts == {}


def test_hosts_are_reached_with_keepalive_retries_and_a_command_timeout():
    target = SshTarget(name="n1", address="10.0.0.1", user="root", port=22, key_file="/k")
    data = connection_data(target, HostKeyPolicy())
    assert data["ssh_connect_retries"] == runner.SSH_CONNECT_RETRIES > 0
    assert 0 < data["ssh_connect_retry_min_delay"] < data["ssh_connect_retry_max_delay"]
    assert data["ssh_paramiko_connect_kwargs"] == {"banner_timeout": 10, "auth_timeout": 10, "channel_timeout": 10}
    assert data["_timeout"] == runner.COMMAND_TIMEOUT_S
    # a half-open connection is noticed within about a minute
    assert runner.SSH_KEEPALIVE_S * runner.SSH_KEEPALIVE_COUNT <= 60


def test_keep_alive_tunes_paramikos_transport_and_its_tcp_socket():
    class Transport:
        def __init__(self):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)

        def set_keepalive(self, interval):
            self.interval = interval

    transport = Transport()
    with transport.sock:
        runner.keep_alive(transport)
        assert transport.interval == runner.SSH_KEEPALIVE_S
        assert transport.sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        assert transport.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == runner.SSH_KEEPALIVE_S
        assert transport.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 60_000
    transport.sock = object()  # a ProxyCommand: no socket to tune
    runner.keep_alive(transport)


def test_a_worker_that_hangs_is_stopped_with_an_error_naming_hosts_and_step(monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "WORKER", "tests.deploys.fake_worker")
    monkeypatch.setattr(runner, "LOG_DIR", tmp_path)
    hosts = [SshTarget(name="ghost", address="10.0.0.1", user="root", port=22, key_file="/k")]
    started = time.monotonic()
    with pytest.raises(DeployError) as failure:
        run_deploy(hosts, "deploys.node:python_runtime", log_name="hang", timeout=1.5, spec=SPEC)
    assert time.monotonic() - started < 10
    message = str(failure.value)
    assert message.startswith("ghost: deploys.node:python_runtime did not finish within 2 s and was stopped")
    assert "connecting to ghost" in message  # the log's tail


def test_the_default_timeout_is_shorter_when_only_observing(monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "LOG_DIR", tmp_path)
    seen = []

    def run(argv, timeout, **kwargs):
        seen.append(timeout)
        raise subprocess.TimeoutExpired(argv, timeout)

    monkeypatch.setattr(runner.subprocess, "run", run)
    hosts = [SshTarget(name="ghost", address="10.0.0.1", user="root", port=22, key_file="/k")]
    for deploy_fn in ("deploys.node:python_runtime", None):
        with pytest.raises(DeployError):
            run_deploy(hosts, deploy_fn, observe="deploys.observe:python_runtime", log_name="timeouts", spec=SPEC)
    assert seen == [runner.DEPLOY_TIMEOUT_S, runner.OBSERVE_TIMEOUT_S]


def test_the_line_that_says_why_stays_above_a_traceback():
    output = ["Looking in links: /tmp/x", "ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device"]
    output += [f"  traceback line {index}" for index in range(20)]
    why = runner.why_lines(output)
    assert why[0].startswith("ERROR: Could not install") and why[1:] == output[-12:]
    assert runner.why_lines(output[-5:]) == output[-5:]  # the control: a short output is all kept, nothing added
