"""Bulk copies from the controller to a node: one tar stream over ssh per push.

One stream is much faster than per-file transfers for wheelhouses and weights (measured: 108 MB to
4 hosts in 3.5 s vs 22 s file by file). Runs as a pyinfra `FunctionCommand`, so it takes part in
an operation like any shell command; the ssh settings are the host's pyinfra connection data.
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
from pathlib import Path

from deploys import sudo

_CHUNK = 1 << 20


class TransferError(RuntimeError):
    pass


def ssh_argv(data, remote_command: str) -> list[str]:
    """openssh invocation equivalent to pyinfra's paramiko connection for `data` (host data)."""
    options = {
        "BatchMode": "yes",
        "IdentitiesOnly": "yes",
        "ConnectTimeout": "10",
        "StrictHostKeyChecking": data.get("ssh_strict_host_key_checking") or "accept-new",
        "UserKnownHostsFile": data.get("ssh_known_hosts_file") or "~/.ssh/known_hosts",
        "LogLevel": "ERROR",
    }
    argv = ["ssh", "-p", str(data.get("ssh_port") or 22)]
    if data.get("ssh_key"):
        argv += ["-i", str(data.get("ssh_key"))]
    for key, value in options.items():
        argv += ["-o", f"{key}={value}"]
    return [*argv, f"{data.get('ssh_user') or 'root'}@{data.get('ssh_hostname')}", remote_command]


def push_files(state, host, source: str, files: list[str], destination: str, extra: dict[str, str]) -> bool:
    """Streams `files` (relative to `source`) and the in-memory `extra` {name: text} into
    `destination`; adds the bytes sent to `host.data.pushed_bytes`.

    Failures are recorded in `host.data.transfer_error` (pyinfra reports a failed callback only
    as "unexpected error") and returned as False.
    """
    try:
        sent = _stream(host, Path(source), files, destination, extra)
    except TransferError as error:
        host.data.transfer_error = f"push to {destination} failed: {error}"
        return False
    host.data.pushed_bytes = (host.data.get("pushed_bytes") or 0) + sent
    return True


def _stream(host, source: Path, files: list[str], destination: str, extra: dict[str, str]) -> int:
    untar = f"mkdir -p {shlex.quote(destination)} && tar -C {shlex.quote(destination)} -xf - --no-same-owner"
    remote = sudo.as_root(host, untar)
    with tempfile.TemporaryDirectory(prefix="rvs-push-") as scratch:
        listing = Path(scratch) / "files"
        listing.write_bytes(b"".join(name.encode() + b"\0" for name in files))
        extras = Path(scratch) / "extra"
        extras.mkdir()
        for name, text in extra.items():
            (extras / name).write_text(text)
        tar = ["tar", "-cf", "-", "--owner=0", "--group=0", "--numeric-owner",
               "-C", str(source.resolve()), "--null", "-T", str(listing)]  # fmt: skip
        if extra:
            tar += ["-C", str(extras), *extra]
        sent = 0
        with (
            subprocess.Popen(tar, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as packer,
            subprocess.Popen(ssh_argv(host.data, remote), stdin=subprocess.PIPE, stderr=subprocess.PIPE) as ssh,
        ):
            try:
                while chunk := packer.stdout.read(_CHUNK):
                    ssh.stdin.write(chunk)
                    sent += len(chunk)
            except BrokenPipeError:
                pass  # ssh exited early; its exit status and stderr say why
            finally:
                ssh.stdin.close()
            packer_error, ssh_error = packer.stderr.read(), ssh.stderr.read()
        if packer.returncode != 0:
            raise TransferError(f"tar exited {packer.returncode}: {packer_error.decode(errors='replace').strip()}")
        if ssh.returncode != 0:
            raise TransferError(f"ssh exited {ssh.returncode}: {ssh_error.decode(errors='replace').strip()}")
        return sent
