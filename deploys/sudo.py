"""Root on a node through sudo, for login users that are not root.

Password-less sudo (the usual cloud image and admin setup) needs nothing but `sudo -n`. With a
password, pyinfra's own way puts it in the remote command line (`env PYINFRA_SUDO_PASSWORD=...`),
which every user of the node can read in `ps` while the command runs. Instead the password goes
over SFTP into a fresh 0700 directory of the login user, beside an askpass program that prints it;
pyinfra is handed that program as its cached askpass path and a placeholder as the "password"
(`deploys.runner.SUDO_PASSWORD_PLACEHOLDER`), and our own tar streams call the same program. The
directory is removed when the run ends.

Before anything runs, `check` proves sudo works, so a refused sudo is one error naming the host,
the user and the fix, never pyinfra's interactive password prompt.
"""

from __future__ import annotations

import shlex
from io import StringIO

from pyinfra.api.command import StringCommand

ASKPASS_DIRECTORY_KEY = "rvs_sudo_directory"
"""`host.connector_data` key of the run's private askpass directory on the node."""
_ASKPASS_PROGRAM = '#!/bin/sh\nexec cat "$(dirname "$0")/password"\n'


class SudoError(RuntimeError):
    pass


COMMAND_TIMEOUT_S = 60
"""Each of this module's own commands (they bypass the operations' `_timeout`)."""


def prepare(host, password: str | None) -> None:
    """Makes sudo usable on `host` for this run (the askpass files when a password is given), then
    checks it; raises `SudoError` with the fix when sudo is refused, or when the host stops answering."""
    try:
        if password:
            _install_askpass(host, password)
        check(host)
    except (TimeoutError, OSError) as error:
        raise SudoError(f"readying sudo got no answer within {COMMAND_TIMEOUT_S} s ({type(error).__name__})") from None


def check(host) -> None:
    # The probe's own exit status is always 0 so pyinfra never mistakes "a password is required"
    # for a prompt to answer; its output says what happened.
    probe = f"if out=$({sudo_prefix(host)} true 2>&1); then echo ok; else echo \"refused: $out\"; fi"
    ok, output = host.run_shell_command(StringCommand(probe), _timeout=COMMAND_TIMEOUT_S)
    answer = " ".join(output.stdout_lines).strip() if ok else output.stderr
    if answer != "ok":
        user = host.data.ssh_user
        raise SudoError(
            f"sudo refused for {user} ({answer.removeprefix('refused: ') or 'no answer'}): give {user} password-less "
            f"sudo on the host (e.g. `{user} ALL=(ALL) NOPASSWD:ALL` in /etc/sudoers.d/), or set its password as "
            "the secret `pulumi config set --secret sudo_password <password>`, or log in as root (`ssh.user: root`)"
        )


def sudo_prefix(host) -> str:
    """The words that run a command as root on `host`: `sudo -n`, or sudo with our askpass."""
    directory = host.connector_data.get(ASKPASS_DIRECTORY_KEY)
    if directory is None:
        return "sudo -H -n"
    return f"SUDO_ASKPASS={shlex.quote(f'{directory}/askpass')} sudo -H -A -k"


def as_root(host, command: str) -> str:
    """`command` (a shell script) as it must be sent to run as root on `host`."""
    if not host.data.get("_sudo"):
        return command
    return f"{sudo_prefix(host)} sh -c {shlex.quote(command)}"


def cleanup(host) -> None:
    """Removes the run's askpass directory (and with it the password) from the node."""
    directory = host.connector_data.get(ASKPASS_DIRECTORY_KEY)
    if directory is not None:
        host.run_shell_command(StringCommand("rm", "-rf", directory), _timeout=COMMAND_TIMEOUT_S)
        host.connector_data[ASKPASS_DIRECTORY_KEY] = None


def _install_askpass(host, password: str) -> None:
    ok, output = host.run_shell_command(
        StringCommand('umask 077 && mktemp -d "$HOME/.ray-vllm-stack-sudo.XXXXXXXX"'), _timeout=COMMAND_TIMEOUT_S
    )
    if not ok or not output.stdout_lines:
        raise SudoError(f"cannot make a private directory for the sudo password: {output.stderr or 'no output'}")
    directory = output.stdout_lines[0].strip()
    # Inside the 0700 directory nobody else can open the files, whatever mode SFTP gives them.
    if not (
        host.put_file(StringIO(password), f"{directory}/password")
        and host.put_file(StringIO(_ASKPASS_PROGRAM), f"{directory}/askpass")
    ):
        raise SudoError("cannot upload the sudo askpass files over SFTP")
    host.run_shell_command(StringCommand("chmod", "700", f"{directory}/askpass"), _timeout=COMMAND_TIMEOUT_S)
    host.connector_data[ASKPASS_DIRECTORY_KEY] = directory
    host.connector_data[f"sudo_askpass_path__{host.get_temp_dir_config()}"] = f"{directory}/askpass"
