"""Child process of `deploys.runner.run_deploy`: `python -m deploys.worker <result file>`, with the
pickled request on stdin. Patches the standard library for gevent before anything imports it, as
the pyinfra CLI does, so hosts are served concurrently.
"""

from gevent import monkey

monkey.patch_all()

import logging  # noqa: E402
import pickle  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402

import gevent  # noqa: E402
from pyinfra.api import Config, Inventory, State  # noqa: E402
from pyinfra.api.connect import connect_all  # noqa: E402
from pyinfra.api.deploy import add_deploy  # noqa: E402
from pyinfra.api.exceptions import PyinfraError  # noqa: E402
from pyinfra.api.operations import run_ops  # noqa: E402
from pyinfra.api.state import StateStage  # noqa: E402

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PREFIX = re.compile(r"^\[(?P<host>[^\]]+)\]\s*(?P<message>.*)$")
_TAIL = 12


class HostErrorLog(logging.Handler):
    """Collects pyinfra's error lines per host: the only place some failures (a connection
    refused, a fact command failing) are described."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: dict[str, list[str]] = defaultdict(list)

    def emit(self, record: logging.LogRecord) -> None:
        match = _PREFIX.match(_ANSI.sub("", record.getMessage()).strip())
        if match and match["message"]:
            self.lines[match["host"]].append(match["message"])


def _host_data(host, host_keys, data) -> dict:
    return {
        "ssh_hostname": str(host.address),
        "ssh_user": host.ssh.user,
        "ssh_port": host.ssh.port,
        "ssh_key": str(host.ssh.key_file),
        "ssh_known_hosts_file": host_keys.known_hosts_file,
        "ssh_strict_host_key_checking": host_keys.strict,
        "host_config": host,
        **data,
    }


def run(request: dict) -> dict[str, dict]:
    hosts, deploy_fn, observe = request["hosts"], request["deploy_fn"], request["observe"]
    data, host_keys = request["data"], request["host_keys"]
    errors_log = HostErrorLog()
    logging.getLogger("pyinfra").addHandler(errors_log)
    started = time.monotonic()

    inventory = Inventory(([(host.name, _host_data(host, host_keys, data)) for host in hosts], {}))
    state = State(inventory=inventory, config=Config(CONNECT_TIMEOUT=10))
    errors: dict[str, str] = {}

    def fail(host, message: str) -> None:
        errors.setdefault(host.name, message)
        try:
            state.fail_hosts({host})
        except PyinfraError:
            pass  # "No hosts remaining!": every host has its own error already

    state.set_stage(StateStage.Connect)
    try:
        connect_all(state)
    except PyinfraError:
        pass  # every host failed to connect; reported below
    unreachable = {host.name for host in inventory if host not in state.active_hosts}
    for host in inventory:
        if host.name in unreachable:
            reason = "; ".join(errors_log.lines[host.name][-2:]) or "connection failed"
            errors[host.name] = f"cannot connect over SSH to {host.data.ssh_user}@{host.data.ssh_hostname}:{host.data.ssh_port}: {reason}"

    if deploy_fn is not None:
        state.set_stage(StateStage.Prepare)
        for host in list(state.active_hosts):
            try:
                add_deploy(state, deploy_fn, host=host, **data)
            except Exception as error:  # a check that stops this host before anything ran on it
                fail(host, str(error))
        for host in inventory:
            if host in state.failed_hosts and host.name not in errors:
                errors[host.name] = "; ".join(errors_log.lines[host.name][-_TAIL:]) or "failed while preparing"
        state.set_stage(StateStage.Execute)
        if state.active_hosts:
            try:
                run_ops(state)
            except PyinfraError:
                pass  # all hosts failed; each failure is read from its operations below
    for host in inventory:
        if host.name not in errors and host in state.failed_hosts:
            errors[host.name] = _failed_operation(state, host, errors_log)

    facts: dict[str, dict] = {}
    if observe is not None:
        healthy = [host for host in inventory if host.name not in errors]
        greenlets = {host.name: gevent.spawn(_observe, state, host, observe, data) for host in healthy}
        gevent.joinall(list(greenlets.values()))
        for name, greenlet in greenlets.items():
            if greenlet.successful():
                facts[name] = greenlet.value
            else:
                errors[name] = f"reading the result failed: {greenlet.exception}"

    seconds = time.monotonic() - started
    return {
        host.name: {
            "name": host.name,
            "changed": _changed(state, host),
            "error": f"{host.name}: {errors[host.name]}" if host.name in errors else None,
            "reachable": host.name not in unreachable,
            "facts": facts.get(host.name, {}),
            "pushed_bytes": host.data.get("pushed_bytes") or 0,
            "seconds": round(seconds, 2),
        }
        for host in inventory
    }


def _observe(state, host, observe, data) -> dict:
    from pyinfra.context import ctx_host, ctx_state

    with ctx_state.use(state), ctx_host.use(host):
        return observe(host, **data)


def _changed(state, host) -> bool:
    metas = (op_data.operation_meta for op_data in state.ops[host].values())
    return any(meta.is_complete() and meta.did_change() for meta in metas)


def _failed_operation(state, host, errors_log: HostErrorLog) -> str:
    """`<operation name>: <why>` for the operation that stopped the host."""
    for op_hash, op_data in state.ops[host].items():
        meta = op_data.operation_meta
        if meta.is_complete() and meta.did_error():
            names = ", ".join(state.get_op_meta(op_hash).names)
            output = meta.stderr_lines or meta.stdout_lines
            why = host.data.get("transfer_error") or "\n".join(output[-_TAIL:]) or "; ".join(errors_log.lines[host.name][-3:])
            return f"{names}: {why or 'failed'}"
    return "; ".join(errors_log.lines[host.name][-_TAIL:]) or "failed"


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    results = run(pickle.loads(sys.stdin.buffer.read()))
    with open(sys.argv[1], "wb") as stream:
        pickle.dump(results, stream)


if __name__ == "__main__":
    main()
