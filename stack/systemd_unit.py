"""Render systemd service units: the one place that knows systemd's quoting rules."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def quote_argument(argument: str) -> str:
    """One ExecStart argument: systemd expands `$` and `%` itself, and splits on whitespace."""
    escaped = argument.replace("%", "%%").replace("$", "$$")
    if _PLAIN.match(escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def command_lines(command: Sequence[str]) -> str:
    """An ExecStart value with each `--flag` on a line of its own (systemd joins lines ending in a
    backslash), so `systemctl cat` and a preview's diff show the one flag that changed in full."""
    parts: list[str] = []
    for argument in command:
        if argument.startswith("--") and parts:
            parts.append(" \\\n    ")
        elif parts:
            parts.append(" ")
        parts.append(quote_argument(argument))
    return "".join(parts)


SANDBOX = (
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "ProtectKernelModules=yes",
    "ProtectControlGroups=yes",
    "RestrictSUIDSGID=yes",
)
"""What Ray and vLLM tolerate (measured on the lab's systemd 252): a read-only system, no homes, a
private /tmp, no privilege gain. /dev stays shared: Ray's object store and vLLM's CPU shared memory
live in /dev/shm, GPUs are device nodes."""


START_LIMIT_BURST = 5
START_LIMIT_INTERVAL_S = 200
"""A unit started `START_LIMIT_BURST` times within `START_LIMIT_INTERVAL_S` seconds (its restarts
under a minute apart: a bad flag, a broken package) stops restarting and is `failed`, which the
readiness probe reports at once with the journal. Slower loops (vLLM waiting out a Ray head that
is away for a while, each try about a minute) keep restarting and recover by themselves. A unit
that hit the limit is started again only after `systemctl reset-failed`, which `up` does."""


@dataclass(frozen=True)
class ServiceUnit:
    description: str
    command: Sequence[str]
    environment: Mapping[str, str] = field(default_factory=dict)
    environment_files: Sequence[str] = ()
    after: Sequence[str] = ("network-online.target",)
    restart: str = "on-failure"
    restart_seconds: int = 5
    start_limit_burst: int | None = START_LIMIT_BURST
    """None: restart forever (no start limit)."""
    start_limit_seconds: int = START_LIMIT_INTERVAL_S
    stop_timeout_seconds: int = 30
    after_stop: Sequence[Sequence[str]] = ()
    """Commands run whenever the service stopped, e.g. to remove what a killed process left behind."""
    user: str | None = None
    """Run as this system user, sandboxed (see `SANDBOX`); None: root, unsandboxed."""
    state_directories: Sequence[str] = ()
    """Under /var/lib: created for `user` and the only places it may write besides /tmp and /dev/shm."""

    def render(self) -> str:
        identity = []
        if self.user is not None:
            identity = [f"User={self.user}", f"Group={self.user}", *SANDBOX]
            if self.state_directories:
                identity.append("StateDirectory=" + " ".join(self.state_directories))
        service = [
            "Type=simple",
            *identity,
            *(f"EnvironmentFile={path}" for path in self.environment_files),
            *(f"Environment={quote_argument(f'{key}={value}')}" for key, value in sorted(self.environment.items())),
            "ExecStart=" + command_lines(self.command),
            *("ExecStopPost=" + " ".join(quote_argument(argument) for argument in command) for command in self.after_stop),
            f"Restart={self.restart}",
            f"RestartSec={self.restart_seconds}",
            f"TimeoutStopSec={self.stop_timeout_seconds}",
            # Ray and vLLM spawn worker processes; stop them all with the unit.
            "KillMode=control-group",
        ]
        return "\n".join([
            "# Managed by ray-vllm-stack (Pulumi); local edits are reverted by `pulumi up`.",
            "[Unit]",
            f"Description={self.description}",
            *(f"After={target}" for target in self.after),
            *(f"Wants={target}" for target in self.after if target.endswith(".target")),
            *(
                ["StartLimitIntervalSec=0"]
                if self.start_limit_burst is None
                else [f"StartLimitIntervalSec={self.start_limit_seconds}", f"StartLimitBurst={self.start_limit_burst}"]
            ),
            "",
            "[Service]",
            *service,
            "",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ])
