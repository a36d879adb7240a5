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
from pyinfra.context import ctx_host, ctx_state  # noqa: E402

from deploys import sudo  # noqa: E402
from deploys.runner import (  # noqa: E402
    OUTPUT_TAIL,
    SSH_CONNECT_TIMEOUT_S,
    connection_data,
    keep_alive,
    resolve,
    why_lines,
)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PREFIX = re.compile(r"^\[(?P<host>[^\]]+)\]\s*(?P<message>.*)$")


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


def run(request: dict) -> dict[str, dict]:
    """{host name: HostResult fields} for the request `deploys.runner.run_deploy` sent."""
    hosts, deploy_fn, observe = request["hosts"], resolve(request["deploy_fn"]), resolve(request["observe"])
    arguments = request["arguments"]
    errors_log = HostErrorLog()
    logging.getLogger("pyinfra").addHandler(errors_log)
    started = time.monotonic()
    sudo_password = request.get("sudo_password")
    data = [(host.name, connection_data(host, request["host_keys"], bool(sudo_password))) for host in hosts]
    inventory = Inventory((data, {}))
    state = State(inventory=inventory, config=Config(CONNECT_TIMEOUT=SSH_CONNECT_TIMEOUT_S))

    errors = _connect(state, errors_log)
    unreachable = set(errors)
    errors.update(_prepare_sudo(state, sudo_password))
    if deploy_fn is not None:
        secrets = {} if request["secrets"] is None else {"secrets": request["secrets"]}
        deploy_arguments = {name: {**values, **secrets} for name, values in arguments.items()}
        errors.update(_apply(state, deploy_fn, deploy_arguments, errors_log))
    facts = _observe_all(state, observe, arguments, errors) if observe is not None else {}
    for host in state.activated_hosts:
        try:
            sudo.cleanup(host)
        except (TimeoutError, OSError) as error:  # the host stopped answering; the run's result stands
            logging.warning("[%s] could not remove the sudo askpass directory: %r", host.name, error)
    seconds = round(time.monotonic() - started, 2)
    return {
        host.name: {
            "name": host.name,
            "changed": _changed(state, host),
            "error": f"{host.name}: {errors[host.name]}" if host.name in errors else None,
            "reachable": host.name not in unreachable,
            "facts": facts.get(host.name, {}),
            "pushed_bytes": host.data.get("pushed_bytes") or 0,
            "seconds": seconds,
        }
        for host in inventory
    }


def _connect(state, errors_log: HostErrorLog) -> dict[str, str]:
    """Connects every host at once; {name: why} for those that could not be reached."""
    state.set_stage(StateStage.Connect)
    try:
        connect_all(state)
    except PyinfraError:
        pass  # every host failed to connect ("No hosts remaining!"); reported below
    for host in state.active_hosts:
        client = getattr(host.connector, "client", None)  # paramiko's, for the SSH connector
        if client is not None and client.get_transport() is not None:
            keep_alive(client.get_transport())
    errors = {}
    for host in state.inventory:
        if host not in state.active_hosts:
            reason = "; ".join(errors_log.lines[host.name][-2:]) or "connection failed"
            target = f"{host.data.ssh_user}@{host.data.ssh_hostname}:{host.data.ssh_port}"
            errors[host.name] = f"cannot connect over SSH to {target}: {reason}"
    return errors


def _prepare_sudo(state, password: str | None) -> dict[str, str]:
    """Readies sudo on the connected hosts that log in as another user; {name: why} for those
    where it is refused (they stop here, before any fact or operation)."""
    errors = {}
    for host in list(state.active_hosts):
        if host.data.get("_sudo"):
            try:
                sudo.prepare(host, password)
            except sudo.SudoError as error:
                errors[host.name] = str(error)
                _fail(state, host)
    return errors


def _apply(state, deploy_fn, arguments: dict[str, dict], errors_log: HostErrorLog) -> dict[str, str]:
    """Prepares the deploy per host (a failed check stops that host before anything ran on it),
    then runs the operations on the hosts still active; {name: why} for the hosts that failed."""
    errors = {}
    state.set_stage(StateStage.Prepare)
    for host in list(state.active_hosts):
        try:
            add_deploy(state, deploy_fn, host=host, **arguments[host.name])
        except Exception as error:  # noqa: BLE001 - any exception is this host's failure, not the run's
            errors[host.name] = str(error)
            _fail(state, host)
    state.set_stage(StateStage.Execute)
    if state.active_hosts:
        try:
            run_ops(state)
        except PyinfraError:
            pass  # every host failed; each failure is read from its operations below
    for host in state.failed_hosts:
        if host.name not in errors and host in state.activated_hosts:
            errors[host.name] = _failed_operation(state, host, errors_log)
    return errors


def _fail(state, host) -> None:
    try:
        state.fail_hosts({host})
    except PyinfraError:
        pass  # "No hosts remaining!": each host has its own error already


def _observe_all(state, observe, arguments: dict[str, dict], errors: dict[str, str]) -> dict[str, dict]:
    """`observe` on every host without an error, concurrently; a failure becomes its error."""
    healthy = [host for host in state.inventory if host.name not in errors]
    greenlets = {host.name: gevent.spawn(_observe, state, host, observe, arguments[host.name]) for host in healthy}
    gevent.joinall(list(greenlets.values()))
    facts = {}
    for name, greenlet in greenlets.items():
        if greenlet.successful():
            facts[name] = greenlet.value
        else:
            errors[name] = f"reading the result failed: {greenlet.exception}"
    return facts


def _observe(state, host, observe, arguments) -> dict:
    with ctx_state.use(state), ctx_host.use(host):
        return observe(host, **arguments)


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
            why = host.data.get("transfer_error") or "\n".join(why_lines(output))
            return f"{names}: {why or '; '.join(errors_log.lines[host.name][-3:]) or 'failed'}"
    return "; ".join(errors_log.lines[host.name][-OUTPUT_TAIL:]) or "failed while preparing"


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    results = run(pickle.loads(sys.stdin.buffer.read()))
    with open(sys.argv[1], "wb") as stream:
        pickle.dump(results, stream)


if __name__ == "__main__":
    main()
