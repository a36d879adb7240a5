"""The tar-over-ssh push: its ssh command line, and which failures it sends again."""

import signal
from concurrent.futures import ThreadPoolExecutor

import pytest

from deploys import transfer
from deploys.runner import HostKeyPolicy, SshTarget, connection_data


class Data(dict):
    """pyinfra's host data: attributes and `get`."""

    __getattr__ = dict.get

    def __setattr__(self, key, value):
        self[key] = value


class Host:
    name = "n1"

    def __init__(self):
        self.data = Data(connection_data(SshTarget(name="n1", address="10.0.0.1", user="root", port=2222,
                                                   key_file="/k"), HostKeyPolicy()))  # fmt: skip


def options(argv: list[str]) -> dict[str, str]:
    return dict(argv[index + 1].split("=", 1) for index, word in enumerate(argv) if word == "-o")


def test_ssh_argv_notices_a_dead_link_within_a_minute():
    argv = transfer.ssh_argv(Host().data, "tar -xf -")
    assert argv[:5] == ["ssh", "-p", "2222", "-i", "/k"] and argv[-2:] == ["root@10.0.0.1", "tar -xf -"]
    settings = options(argv)
    assert settings["ConnectTimeout"] == "10" and settings["BatchMode"] == "yes"
    assert int(settings["ServerAliveInterval"]) * int(settings["ServerAliveCountMax"]) <= 60


@pytest.mark.parametrize(("returncode", "stderr", "retried"), [
    (255, "ssh: connect to host 10.0.0.1 port 22: Connection refused", True),
    (255, "Connection reset by 10.0.0.1 port 22", True),
    (255, "ssh: connect to host 10.0.0.1 port 22: Connection timed out", True),
    (255, "Timeout, server 10.0.0.1 not responding.", True),
    (255, "kex_exchange_identification: read: Connection reset by peer", True),
    (255, "root@10.0.0.1: Permission denied (publickey).", False),
    (2, "tar: /opt/x: Cannot open: No space left on device", False),
    (1, "sudo: a password is required", False),
])  # fmt: skip
def test_only_link_failures_are_sent_again(returncode, stderr, retried):
    error = transfer._ssh_error(returncode, stderr)
    assert isinstance(error, transfer.LinkError) is retried
    assert str(error) == f"ssh exited {returncode}: {stderr}"


def test_a_push_is_sent_again_after_a_growing_delay_then_gives_up(monkeypatch):
    attempts, delays = [], []

    def stream(*args):
        attempts.append(args)
        raise transfer.LinkError("ssh exited 255: Connection reset by 10.0.0.1 port 22")

    monkeypatch.setattr(transfer, "_stream", stream)
    monkeypatch.setattr(transfer.time, "sleep", delays.append)
    monkeypatch.setattr(transfer.random, "uniform", lambda low, high: high)
    host = Host()
    assert transfer.push_files(None, host, "/src", ["a"], "/dst", {}) is False
    assert len(attempts) == transfer.TRANSFER_RETRIES + 1 and delays == [2.0, 4.0]
    assert host.data.transfer_error == (
        "push to /dst failed after 3 tries: ssh exited 255: Connection reset by 10.0.0.1 port 22"
    )


def test_a_push_that_recovers_counts_its_bytes_once(monkeypatch):
    outcomes = [transfer.LinkError("ssh exited 255: Connection refused"), 1234]

    def stream(*args):
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(transfer, "_stream", stream)
    monkeypatch.setattr(transfer.time, "sleep", lambda seconds: None)
    host = Host()
    assert transfer.push_files(None, host, "/src", ["a"], "/dst", {}) is True
    assert host.data.pushed_bytes == 1234 and host.data.transfer_error is None


def test_a_failure_of_the_remote_side_is_not_sent_again(monkeypatch):
    calls = []

    def stream(*args):
        calls.append(args)
        raise transfer.TransferError("ssh exited 2: tar: No space left on device")

    monkeypatch.setattr(transfer, "_stream", stream)
    host = Host()
    assert transfer.push_files(None, host, "/src", ["a"], "/dst", {}) is False
    assert len(calls) == 1
    assert host.data.transfer_error == "push to /dst failed: ssh exited 2: tar: No space left on device"


def test_a_push_cut_short_by_its_timeout_leaves_no_process_behind(monkeypatch, tmp_path):
    """pyinfra's `_timeout` raises inside the push; here an alarm does, while ssh (a `sleep` that
    reads nothing) holds the stream."""
    (tmp_path / "big").write_bytes(b"x" * (4 << 20))
    started = []

    def argv(data, remote):
        return ["sleep", "600"]

    real_popen = transfer.subprocess.Popen

    def popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    def expire(signum, frame):
        raise TimeoutError

    monkeypatch.setattr(transfer, "ssh_argv", argv)
    monkeypatch.setattr(transfer.subprocess, "Popen", popen)
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(TimeoutError):
            transfer._stream(Host(), tmp_path, ["big"], "/dst", {})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert len(started) == 2 and all(process.poll() is not None for process in started)


def test_a_link_that_breaks_mid_push_ends_the_push_with_ssh_s_words(monkeypatch, tmp_path):
    """ssh (a shell that reads a little, then fails as a dead link does) exits while tar still has
    megabytes to write: the push ends at once with a link error, tar does not wait forever."""
    (tmp_path / "big").write_bytes(b"x" * (16 << 20))

    def argv(data, remote):
        return ["sh", "-c", "head -c 1000 >/dev/null; echo 'Timeout, server 10.0.0.2 not responding.' >&2; exit 255"]

    monkeypatch.setattr(transfer, "ssh_argv", argv)
    with ThreadPoolExecutor(1) as pool:
        push = pool.submit(transfer._stream, Host(), tmp_path, ["big"], "/dst", {})
        with pytest.raises(transfer.LinkError, match="not responding"):
            push.result(timeout=30)
    # The control: an ssh that takes everything in lets the same push finish.
    monkeypatch.setattr(transfer, "ssh_argv", lambda data, remote: ["sh", "-c", "cat >/dev/null"])
    assert transfer._stream(Host(), tmp_path, ["big"], "/dst", {}) > 16 << 20
