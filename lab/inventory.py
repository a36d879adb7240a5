"""The inventory file the dev stack reads (inventory/dev.yaml), written from the lab's hosts."""

import os
from datetime import UTC, datetime

import yaml

from lab.layout import Host
from lab.paths import INVENTORY_FILE, SSH_KEY, relative_to_repo
from lab.rootfs import SUITE

LAB_RELEASE = {"bookworm": "debian-12", "trixie": "debian-13"}[SUITE]


class _IndentedDumper(yaml.SafeDumper):
    """Indents list items under their key, as the hand-written inventories do."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def render(hosts: list[Host], written_at: datetime) -> str:
    entries = [
        {
            "name": host.name,
            "address": host.address,
            "ssh": {"user": "root", "port": 22, "key_file": relative_to_repo(SSH_KEY), "host_keys": "ignore"},
            "lab": True,
            # No route out: the controller pushes the .debs of the lab's release.
            "os": LAB_RELEASE,
            "route_out": False,
            "role": host.role,
            "accelerator": "cpu",
            "gpus": [],
        }
        for host in hosts
    ]
    header = f"# Written by `python -m lab up` on {written_at.isoformat(timespec='seconds')}; do not edit.\n"
    return header + yaml.dump({"hosts": entries}, Dumper=_IndentedDumper, sort_keys=False, default_flow_style=None)


def write(hosts: list[Host]) -> None:
    """Replace the file atomically: the stack never reads half an inventory."""
    INVENTORY_FILE.parent.mkdir(parents=True, exist_ok=True)
    partial = INVENTORY_FILE.with_suffix(".yaml.partial")
    partial.write_text(render(hosts, datetime.now(UTC)))
    os.replace(partial, INVENTORY_FILE)
