"""`python -m lab ...`: argument parsing and printing over lab.api."""

import argparse
import sys
import time

from lab import api
from lab.errors import LabError
from lab.layout import DEFAULT_RELEASES, DEFAULT_SHM_SIZE, DEFAULT_SUBNET, MAX_HOSTS, RELEASES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lab", description="Simulated bare-metal hosts on this machine.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="build the base once, start the hosts, write inventory/dev.yaml")
    up.add_argument("--hosts", type=int, default=2, help=f"number of hosts, 1 to {MAX_HOSTS} (default 2)")
    up.add_argument("--subnet", default=DEFAULT_SUBNET, help=f"lab subnet (default {DEFAULT_SUBNET})")
    up.add_argument("--shm-size", default=DEFAULT_SHM_SIZE,
                    help=f"each host's /dev/shm tmpfs size (default {DEFAULT_SHM_SIZE})")
    up.add_argument("--releases", default=",".join(DEFAULT_RELEASES), type=lambda value: tuple(value.split(",")),
                    help=f"Debian suites of the hosts, cycled over them ({', '.join(RELEASES)}; "
                         f"default {','.join(DEFAULT_RELEASES)}: lab1 Debian 12, lab2 Debian 13, ...; "
                         "one suite: every host runs it)")
    commands.add_parser("down", help="remove everything the lab made")
    commands.add_parser("status", help="hosts, addresses, up or down")
    for name, summary in (("crash", "kill a host's init abruptly: everything on it dies"),
                          ("start", "boot a stopped host again on its kept disk"),
                          ("isolate", "cut a host's network link"),
                          ("reconnect", "restore a host's network link")):
        commands.add_parser(name, help=summary).add_argument("host", help="host name, e.g. lab1")
    return parser


def _print_status() -> None:
    rows = api.status()
    if not rows:
        print("the lab is down")
        return
    print(f"{'NAME':<6} {'ADDRESS':<15} {'STATE':<9} {'OS':<10} {'PSS MiB':>8} {'RSS MiB':>8}")
    for row in rows:
        memory = f"{row.pss_mib:>8.0f} {row.rss_mib:>8.0f}" if row.state != "down" else f"{'-':>8} {'-':>8}"
        print(f"{row.name:<6} {row.address:<15} {row.state:<9} {row.os:<10} {memory}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.monotonic()
    try:
        if args.command == "up":
            hosts = api.up(hosts=args.hosts, subnet=args.subnet, shm_size=args.shm_size, releases=args.releases)
            print(f"{len(hosts)} hosts up in {time.monotonic() - started:.1f} s "
                  f"({', '.join(f'{h.name} {h.address} {h.release}' for h in hosts)}); inventory/dev.yaml written")
        elif args.command == "down":
            api.down()
            print(f"the lab is down ({time.monotonic() - started:.1f} s)")
        elif args.command == "status":
            _print_status()
        else:
            getattr(api, args.command)(args.host)
            print(f"{args.command} {args.host}: done ({time.monotonic() - started:.1f} s)")
    except LabError as error:
        print(f"lab {args.command}: {' | '.join(str(error).splitlines())}", file=sys.stderr)
        return 1
    return 0
