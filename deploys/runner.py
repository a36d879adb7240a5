"""Apply any pyinfra deploy to a list of hosts from Python and report per host.

    results = run_deploy(hosts, node.python_env, spec=spec, observe=observe.python_env)
    results["lab1"].error      # "lab1: Python environment / Install ...: <stderr tail>" or None

Each call runs pyinfra in a child process (`deploys.worker`): pyinfra keeps its state in module
globals and wants gevent's monkey patching, neither of which may leak into the caller (Pulumi's
dynamic provider serves requests from a gRPC thread pool). A host that cannot be reached or whose
step fails gets an error naming it; the other hosts carry on.
"""

from __future__ import annotations

import importlib
import os
import pickle
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from artifacts.paths import CACHE_DIR, REPO_ROOT

LOG_DIR = CACHE_DIR / "logs" / "provision"

SSH_CONNECT_TIMEOUT_S = 10
SSH_CONNECT_RETRIES = 2
"""Tries after the first to open a connection (refused, reset, timed out, no SSH banner): nothing
ran on the host yet, so trying again is safe. Jittered delays of `SSH_RETRY_DELAY_S` apart; a
refused login or a changed host key is never retried."""
SSH_RETRY_DELAY_S = (1.0, 4.0)
SSH_KEEPALIVE_S = 15
SSH_KEEPALIVE_COUNT = 4
"""A peer silent for `SSH_KEEPALIVE_S` x `SSH_KEEPALIVE_COUNT` seconds (a minute) is gone: the
connection is closed and the command on it fails, where a half-open connection would hang forever."""
COMMAND_TIMEOUT_S = 3600
"""The longest any one remote command may take (pyinfra's `_timeout`): the longest legitimate one
waits for a service's readiness a few times over (`ready_timeout`, up to 900 s each)."""
PUSH_TIMEOUT_S = 5 * 3600
"""A bulk push (wheelhouse, weights) and its check: hundreds of GB over a slow link. A stalled
stream ends much sooner (ssh's keepalive)."""
DEPLOY_TIMEOUT_S = 6 * 3600
"""The whole child process of a deploy: a backstop above the longest push."""
OBSERVE_TIMEOUT_S = COMMAND_TIMEOUT_S
"""A child that only reads facts (`pulumi refresh`): its longest fact hashes every weight file."""


class SshTarget(BaseModel):
    """How to reach one node: all the pyinfra side knows of a host (the stack's `HostConfig` says
    more, and stays on its side of the house)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")
    address: str
    user: str
    port: int = Field(ge=1, le=65535)
    key_file: str
    sudo: bool = False
    """Every command and push goes through sudo (`deploys.sudo`): a login user that is not root."""


@dataclass(frozen=True)
class HostKeyPolicy:
    """How SSH treats host keys; the default suits real hosts, the lab resets keys on every boot."""

    known_hosts_file: str = "~/.ssh/known_hosts"
    strict: str = "accept-new"


LAB_HOST_KEYS = HostKeyPolicy(known_hosts_file="/dev/null", strict="no")


def connection_data(host: SshTarget, host_keys: HostKeyPolicy, sudo_password: bool = False) -> dict:
    """pyinfra host data for reaching `host` over SSH (also what `deploys.transfer` reads); with
    `sudo`, every operation and fact runs through sudo (`deploys.sudo` says how a password is given)."""
    data = {
        "ssh_hostname": host.address,
        "ssh_user": host.user,
        "ssh_port": host.port,
        "ssh_key": host.key_file,
        "ssh_known_hosts_file": host_keys.known_hosts_file,
        "ssh_strict_host_key_checking": host_keys.strict,
        "ssh_connect_retries": SSH_CONNECT_RETRIES,
        "ssh_connect_retry_min_delay": SSH_RETRY_DELAY_S[0],
        "ssh_connect_retry_max_delay": SSH_RETRY_DELAY_S[1],
        # A host that accepts TCP but whose sshd never answers (overloaded, hung) fails the connect too.
        "ssh_paramiko_connect_kwargs": {"banner_timeout": SSH_CONNECT_TIMEOUT_S, "auth_timeout": SSH_CONNECT_TIMEOUT_S,
                                        "channel_timeout": SSH_CONNECT_TIMEOUT_S},  # fmt: skip
        "_timeout": COMMAND_TIMEOUT_S,
    }
    if host.sudo:
        data["_sudo"] = True
        if sudo_password:
            data["_sudo_password"] = SUDO_PASSWORD_PLACEHOLDER
    return data


def keep_alive(transport) -> None:
    """Makes a paramiko connection notice a vanished peer within about a minute: paramiko's
    keepalive sends a packet every `SSH_KEEPALIVE_S` but never waits for an answer, so the TCP
    socket closes the connection once data stays unacknowledged (TCP_USER_TIMEOUT) or its own
    keepalive probes go unanswered. (pyinfra sets paramiko's keepalive only from an ssh config file.)"""
    transport.set_keepalive(SSH_KEEPALIVE_S)
    sock = transport.sock
    if not isinstance(sock, socket.socket):
        return  # a ProxyCommand's pipe: the proxy's own ssh watches the link
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (
        ("TCP_KEEPIDLE", SSH_KEEPALIVE_S),
        ("TCP_KEEPINTVL", SSH_KEEPALIVE_S),
        ("TCP_KEEPCNT", SSH_KEEPALIVE_COUNT),
        ("TCP_USER_TIMEOUT", SSH_KEEPALIVE_S * SSH_KEEPALIVE_COUNT * 1000),
    ):
        if hasattr(socket, option):  # Linux has them all; other controllers keep their defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


SUDO_PASSWORD_PLACEHOLDER = "given-in-askpass-file"
"""What pyinfra puts in the command line where it would put the sudo password: our askpass
program ignores it and reads the password from a private file (`deploys.sudo`)."""


@dataclass
class HostResult:
    name: str
    changed: bool = False
    error: str | None = None
    reachable: bool = True
    """False when SSH could not connect (the error says why)."""
    facts: dict = field(default_factory=dict)
    """What `observe` returned for the host after the deploy (empty without `observe` or on error)."""
    pushed_bytes: int = 0
    seconds: float = 0.0


WORKER = "deploys.worker"
OUTPUT_TAIL = 12
"""Lines of a failed command's output an error quotes."""
_ERROR_LINE = re.compile(r"^\s*(ERROR|error|E):")


def why_lines(output: list[str]) -> list[str]:
    """The output's tail, after the last error lines above it (pip's `ERROR:`, uv's `error:`, apt's
    `E:`): a tool's traceback would otherwise push the one line that says why out of the tail."""
    head, tail = output[:-OUTPUT_TAIL], output[-OUTPUT_TAIL:]
    return [line for line in head if _ERROR_LINE.match(line)][-3:] + tail
"""The module the child process runs (tests put a fake in its place)."""


class DeployError(RuntimeError):
    """The child process itself failed (not a host): its log tail says why."""


Function = Callable[..., Any] | str
"""A module-level function, or its `module:function` name for callers that must not import it."""


def run_deploy(
    hosts: list[SshTarget],
    deploy_fn: Function | None,
    *,
    observe: Function | None = None,
    host_keys: HostKeyPolicy = HostKeyPolicy(),
    log_name: str | None = None,
    per_host: dict[str, dict] | None = None,
    secrets: dict[str, str] | None = None,
    sudo_password: str | None = None,
    timeout: float | None = None,
    **data,
) -> dict[str, HostResult]:
    """Runs `deploy_fn(**data)` on every host (in parallel), then `observe(host, **data)` on the
    hosts that succeeded; `per_host[name]` adds or replaces arguments for one host (its own
    plan). Arguments must pickle.
    `secrets`, when given, goes to the deploy alone as `secrets=`: never to `observe`, and to the
    child only through its stdin, never its argv or log. `sudo_password` travels the same way, for
    the hosts reached through sudo.
    `deploy_fn=None` only observes (what `pulumi refresh` needs).

    The child's log goes to `.cache/logs/provision/<log_name or host names>.log`. It is stopped
    after `timeout` seconds (default `DEPLOY_TIMEOUT_S`, or `OBSERVE_TIMEOUT_S` when only
    observing): DeployError names the hosts and the step.
    """
    if timeout is None:
        timeout = DEPLOY_TIMEOUT_S if deploy_fn is not None else OBSERVE_TIMEOUT_S
    arguments = {host.name: {**data, **(per_host or {}).get(host.name, {})} for host in hosts}
    request = {"hosts": hosts, "deploy_fn": deploy_fn, "observe": observe, "host_keys": host_keys,
               "arguments": arguments, "secrets": secrets, "sudo_password": sudo_password}  # fmt: skip
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{log_name or '-'.join(host.name for host in hosts)}.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    with tempfile.NamedTemporaryFile(prefix="rvs-deploy-", suffix=".pickle") as result_file:
        with log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {_name(deploy_fn or 'observe')}\n".encode())
            log.flush()
            try:
                child = subprocess.run(
                    [sys.executable, "-m", WORKER, result_file.name],
                    input=pickle.dumps(request),
                    stdout=log,
                    stderr=log,
                    cwd=REPO_ROOT,
                    env=env,
                    timeout=timeout,
                )
            except subprocess.TimeoutExpired:
                # run() killed the child; its ssh and tar children end with their pipes.
                names = ", ".join(host.name for host in hosts)
                raise DeployError(
                    f"{names}: {_name(deploy_fn or observe or 'observe')} did not finish within {timeout:.0f} s and was "
                    f"stopped (log: {log_path}):\n{_tail(log_path)}"
                ) from None
        if child.returncode != 0:
            raise DeployError(f"the pyinfra runner exited {child.returncode} (log: {log_path}):\n{_tail(log_path)}")
        raw = pickle.loads(Path(result_file.name).read_bytes())
    return {name: HostResult(**values) for name, values in raw.items()}


def _tail(log_path: Path, lines: int = 15) -> str:
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])


def resolve(function: Function | None) -> Callable[..., Any] | None:
    """The function itself; a `module:function` name is imported (in the child process)."""
    if not isinstance(function, str):
        return function
    module, name = function.split(":")
    return getattr(importlib.import_module(module), name)


def _name(function: Function) -> str:
    return function if isinstance(function, str) else function.__name__
