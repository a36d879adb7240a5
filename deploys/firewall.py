"""The node's host firewall: the stack's own nftables table, loaded from a rules file and kept
across reboots by a oneshot unit; applied, observed and retired like every other step.

Loading replaces only the stack's table (`inet ray_vllm_stack`), in one transaction; the host's
other tables are left as they are. Right after loading, the node records the rules' digest and a
digest of the table as the kernel lists it, so a table deleted or edited by hand is seen (by the
next apply, and by `pulumi refresh`) and loaded again.
"""

from __future__ import annotations

import shlex
from io import StringIO

from pyinfra import host
from pyinfra.api import FactBase, Host, OperationError, deploy, operation
from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from deploys.layout import CONFIG_DIR, FIREWALL_RECORD
from deploys.services import FileDigests, UnitActive, files_digest
from deploys.specs import FirewallSpec

NFT = "/usr/sbin/nft"
_SECTION = "--ray-vllm-stack--"


def _q(*arguments: str) -> str:
    return " ".join(shlex.quote(str(argument)) for argument in arguments)


def listing_digest(table: str) -> str:
    """Shell: sha256 of the table as `nft list` prints it (the record and the fact use the same)."""
    return f"{NFT} list table inet {_q(table)} | sha256sum | cut -d' ' -f1"


class FirewallTable(FactBase[dict]):
    """{"table": digest of the loaded table's listing or None, "record": {"rules", "table"} or None}:
    the table now, and what the last load left behind (`FIREWALL_RECORD`)."""

    @staticmethod
    def default() -> dict:
        return {"table": None, "record": None}

    def requires_command(self, table: str, record: str) -> str:
        return "nft"

    def command(self, table: str, record: str) -> str:
        return (
            f"if {NFT} list table inet {_q(table)} >/dev/null 2>&1; then {listing_digest(table)}; else echo -; fi; "
            f"echo {_SECTION}; cat {_q(record)} 2>/dev/null; true"
        )

    def process(self, output: list[str]) -> dict:
        split = output.index(_SECTION) if _SECTION in output else len(output)
        table = output[0].strip() if split else "-"
        fields = dict(line.split(" ", 1) for line in output[split + 1 :] if " " in line)
        record = {"rules": fields["rules"], "table": fields["table"]} if {"rules", "table"} <= set(fields) else None
        return {"table": None if table == "-" else table, "record": record}


class LocalPortRange(FactBase[list | None]):
    """The node's `net.ipv4.ip_local_port_range` as [first, last]: where sockets bound to port 0 land."""

    def command(self) -> str:
        return "cat /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true"

    def process(self, output: list[str]) -> list | None:
        numbers = output[0].split() if output else []
        return [int(numbers[0]), int(numbers[1])] if len(numbers) == 2 else None


class UnitEnabled(FactBase[bool]):
    def command(self, unit: str) -> str:
        return f"systemctl is-enabled {shlex.quote(unit)} 2>/dev/null || true"

    def process(self, output: list[str]) -> bool:
        return bool(output) and output[-1].strip() == "enabled"


def firewall_unit(spec: FirewallSpec) -> str:
    """Loads the rules at boot, like Debian's own nftables.service (and after it: that one starts with
    `flush ruleset`); stopping it deletes the stack's table and nothing else."""
    return "\n".join([
        "# Managed by ray-vllm-stack (Pulumi); local edits are reverted by `pulumi up`.",
        "[Unit]",
        f"Description=ray-vllm-stack host firewall (nftables table inet {spec.table})",
        "DefaultDependencies=no",
        "Wants=network-pre.target",
        "Before=network-pre.target shutdown.target",
        "After=nftables.service",
        "Conflicts=shutdown.target",
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        f"ExecStart={NFT} -f {spec.path}",
        f"ExecReload={NFT} -f {spec.path}",
        f"ExecStop=-{NFT} delete table inet {spec.table}",
        "",
        "[Install]",
        "WantedBy=sysinit.target",
        "",
    ])


@operation()
def firewall_loaded(spec: FirewallSpec):
    """The stack's table is what loading `spec.path` gives, per the node's record of the last load.

    Fails before anything changes when the node's ephemeral port range reaches past the one the
    rules restrict: vLLM's pipeline sockets landing there would be open to anyone."""
    ports = host.get_fact(LocalPortRange)
    low, high = spec.ephemeral_ports
    if ports is not None and not (low <= ports[0] and ports[1] <= high):
        raise OperationError(
            f"net.ipv4.ip_local_port_range is {ports[0]}-{ports[1]}, outside the {low}-{high} the firewall "
            f"restricts to the cluster for vLLM's pipeline sockets; set it within {low}-{high} on the node "
            "(sysctl), or turn security.firewall off"
        )
    state = host.get_fact(FirewallTable, table=spec.table, record=FIREWALL_RECORD)
    if state["table"] is not None and state["record"] == {"rules": spec.digest, "table": state["table"]}:
        host.noop(f"table inet {spec.table} holds rules {spec.digest[:12]}")
        return
    yield f"{NFT} -f {_q(spec.path)}"
    record = _q(FIREWALL_RECORD)
    yield (
        f"mkdir -p {_q(FIREWALL_RECORD.rsplit('/', 1)[0])} && "
        f"{{ echo {_q(f'rules {spec.digest}')}; printf 'table %s\\n' \"$({listing_digest(spec.table)})\"; }} "
        f"> {record}.new && mv {record}.new {record}"
    )


@operation()
def firewall_table_absent(table: str):
    state = host.get_fact(FirewallTable, table=table, record=FIREWALL_RECORD)
    if state["table"] is None:
        host.noop(f"no table inet {table}")
        return
    # Stopping the unit may have deleted it already.
    yield f"if {NFT} list table inet {_q(table)} >/dev/null 2>&1; then {NFT} delete table inet {_q(table)}; fi"


@deploy("Host firewall")
def firewall(spec: FirewallSpec):
    files.directory(name="Create the stack's config directory", path=CONFIG_DIR, mode="755")
    files.put(name=f"Write {spec.path}", src=StringIO(spec.rules), dest=spec.path, mode="644")
    unit = files.put(name=f"Write {spec.unit_path}", src=StringIO(firewall_unit(spec)), dest=spec.unit_path, mode="644")
    systemd.daemon_reload(name="Reload systemd units", _if=any_changed(unit))
    systemd.service(name=f"Start and enable {spec.unit}", service=spec.unit, running=True, enabled=True)
    # Loads when the node's record of the last load differs from these rules or from the table now.
    firewall_loaded(name=f"Load the stack's nftables table from {spec.path}", spec=spec)


@deploy("Retire host firewall")
def retire_firewall(spec: FirewallSpec, purge_cache: bool = False):
    systemd.service(name=f"Stop and disable {spec.unit}", service=spec.unit, running=False, enabled=False)
    firewall_table_absent(name=f"Delete table inet {spec.table}", table=spec.table)
    for path in (spec.unit_path, spec.path, FIREWALL_RECORD):
        files.file(name=f"Remove {path}", path=path, present=False)
    systemd.daemon_reload(name="Reload systemd units")


def firewall_state(host: Host, spec: FirewallSpec) -> dict:
    return {
        "active": host.get_fact(UnitActive, unit=spec.unit),
        "enabled": host.get_fact(UnitEnabled, unit=spec.unit),
        "files": files_digest(host.get_fact(FileDigests, paths=[spec.path, spec.unit_path])),
        "table": host.get_fact(FirewallTable, table=spec.table, record=FIREWALL_RECORD)["table"],
    }
