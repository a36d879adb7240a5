"""SSH from the controller to the hosts: the lab key, a client config, readiness waits.

Hosts refuse root logins, as most real hosts do: the lab logs in as its sudo user and runs
commands through `sudo -n bash -c`, so callers keep writing scripts for a root shell (bash was
root's login shell, which ran them before; `-n`: fail instead of waiting for a password).
"""

import shlex
import socket
import subprocess

from lab.commands import run
from lab.errors import LabError
from lab.layout import Host
from lab.paths import SSH_CONFIG, SSH_DIR, SSH_KEY
from lab.rootfs import LOGIN_USER

# Host keys change whenever a host's disk is reset, so the lab never records them.
CLIENT_OPTIONS = {
    "StrictHostKeyChecking": "no",
    "UserKnownHostsFile": "/dev/null",
    "BatchMode": "yes",
    "IdentitiesOnly": "yes",
    "LogLevel": "ERROR",
    "ConnectTimeout": "5",
}


def ensure_key() -> None:
    if not SSH_KEY.exists():
        SSH_DIR.mkdir(parents=True, exist_ok=True)
        SSH_DIR.chmod(0o700)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rvs-lab", "-f", str(SSH_KEY)],
            what="generate the lab SSH key")


def ssh_argv(host: Host, *command: str) -> list[str]:
    """An ssh command line that runs `command` on the host as root (through sudo), never prompting.

    As with plain ssh, the words of `command` are joined with spaces into one shell script.
    """
    return login_argv(host, LOGIN_USER, "sudo -n bash -c " + shlex.quote(" ".join(command)))


def login_argv(host: Host, user: str, *command: str) -> list[str]:
    """An ssh command line that logs in as `user` with the lab key and runs `command` as that user."""
    options = [arg for key, value in CLIENT_OPTIONS.items() for arg in ("-o", f"{key}={value}")]
    return ["ssh", "-i", str(SSH_KEY), *options, "-l", user, host.address, *command]


def write_config(hosts: list[Host]) -> None:
    """`ssh -F .lab/ssh/config lab1` for people; the tools use ssh_argv."""
    entries = []
    for host in hosts:
        lines = [f"Host {host.name}", f"    HostName {host.address}", f"    User {LOGIN_USER}", f"    IdentityFile {SSH_KEY}"]
        lines += [f"    {key} {value}" for key, value in CLIENT_OPTIONS.items()]
        entries.append("\n".join(lines))
    SSH_CONFIG.write_text("# Written by `python -m lab up`; do not edit.\n" + "\n\n".join(entries) + "\n")


def sshd_answers(host: Host) -> bool:
    """True once sshd on the host greets with its banner."""
    try:
        with socket.create_connection((host.address, 22), timeout=0.5) as connection:
            connection.settimeout(1)
            return connection.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def check_login(host: Host) -> None:
    """The lab key logs in as the lab's user, and sudo works; raise with ssh's or sudo's own words if not."""
    login = subprocess.run(ssh_argv(host, "true"), capture_output=True, text=True, timeout=30)
    if login.returncode != 0:
        raise LabError(f"{host.name} ({host.address}): sshd answers but the lab key does not log in as "
                       f"{LOGIN_USER} with sudo "
                       f"({login.stderr.strip() or f'exit {login.returncode}'}); see .lab/{host.name}/console.log")
