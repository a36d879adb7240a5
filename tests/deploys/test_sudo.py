"""How commands reach root through sudo, and the error when sudo is refused (no SSH: a fake host
answers like a real one; the lab tests run it on hosts that refuse root logins)."""

from types import SimpleNamespace

import pytest

from deploys import sudo


class FakeHost:
    """Answers `run_shell_command` with a canned sudo outcome and records what it was asked."""

    def __init__(self, answer: str | None, sudo_on: bool = True, ssh_user: str = "rvs"):
        self.answer = answer
        self.data = SimpleNamespace(ssh_user=ssh_user, get=lambda key, default=None: sudo_on if key == "_sudo" else default)
        self.connector_data: dict = {}
        self.commands: list[str] = []

    def run_shell_command(self, command, _timeout=None):
        assert _timeout == sudo.COMMAND_TIMEOUT_S
        self.commands.append(command.get_raw_value())
        if self.answer is None:
            raise TimeoutError  # what pyinfra raises when `_timeout` passes
        return True, SimpleNamespace(stdout_lines=[self.answer], stderr="")


def test_root_login_sends_commands_as_they_are_and_a_sudo_user_wraps_them_whole():
    script = "mkdir -p '/opt/x y' && tar -C '/opt/x y' -xf -"
    assert sudo.as_root(FakeHost("ok", sudo_on=False), script) == script
    wrapped = sudo.as_root(FakeHost("ok"), script)
    # The whole script runs as root (not only its first command), quoted as one argument.
    assert wrapped == "sudo -H -n sh -c 'mkdir -p '\"'\"'/opt/x y'\"'\"' && tar -C '\"'\"'/opt/x y'\"'\"' -xf -'"


def test_with_a_password_the_askpass_program_answers_and_the_password_is_nowhere_in_the_command():
    host = FakeHost("ok")
    host.connector_data[sudo.ASKPASS_DIRECTORY_KEY] = "/home/rvs/.ray-vllm-stack-sudo.abc"
    wrapped = sudo.as_root(host, "true")
    assert wrapped == "SUDO_ASKPASS=/home/rvs/.ray-vllm-stack-sudo.abc/askpass sudo -H -A -k sh -c true"


def test_refused_sudo_is_one_error_naming_the_user_and_the_fixes():
    refused = FakeHost("refused: sudo: a password is required")
    with pytest.raises(sudo.SudoError) as raised:
        sudo.check(refused)
    message = str(raised.value)
    assert "sudo refused for rvs (sudo: a password is required)" in message
    assert "NOPASSWD" in message and "sudo_password" in message and "ssh.user: root" in message
    # The probe itself always exits 0, so pyinfra never turns "a password is required" into a prompt.
    assert refused.commands == ['if out=$(sudo -H -n true 2>&1); then echo ok; else echo "refused: $out"; fi']
    sudo.check(FakeHost("ok"))  # positive control: a working sudo passes


def test_a_host_that_stops_answering_is_a_sudo_error_not_a_hang():
    with pytest.raises(sudo.SudoError) as raised:
        sudo.prepare(FakeHost(None), None)
    assert str(raised.value) == "readying sudo got no answer within 60 s (TimeoutError)"
