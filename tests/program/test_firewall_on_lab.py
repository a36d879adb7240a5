"""The dev stack served with its host firewall on (`security.firewall`, the default): serving works
under the rules, every node holds the stack's table, a machine that is no member of the cluster
(the controller, on the lab's bridge) reaches the API but no cluster port, and every port the
stack's processes listen on is among `required_ports`. (That `destroy` removes the table and its
unit is checked by the served-stack destroy test.)"""

import json
import shlex
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from lab import api
from stack.firewall import covers, parse_ports
from stack.ray_units import HEAD_UNIT, WORKER_UNIT
from stack.vllm_unit import API_FRONT_UNIT, VLLM_UNIT
from tools.chat import chat

pytestmark = [pytest.mark.lab, pytest.mark.engine]

HEAD, WORKER = "lab1", "lab2"
HEAD_ADDRESS = "10.201.0.11"
TABLE = "inet ray_vllm_stack"
CONNECT_TIMEOUT_S = 3.0
"""A dropped SYN gets no answer: a connection still pending after this long counts as dropped."""
STACK_UNITS = (HEAD_UNIT, WORKER_UNIT, VLLM_UNIT, API_FRONT_UNIT)

LISTENERS = r"""
import json, re, subprocess
lines = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout.splitlines()
for line in lines:
    local = line.split()[3]
    address, _, port = local.rpartition(":")
    for name, pid in re.findall(r'\("([^"]*)",pid=(\d+)', line):
        try:
            cgroup = open(f"/proc/{pid}/cgroup").read()
        except OSError:
            continue
        units = re.findall(r"(rvs-[a-z0-9-]+\.service)", cgroup)
        print(json.dumps({"address": address.strip("[]"), "port": int(port), "process": name,
                          "unit": units[0] if units else None}))
"""
"""Prints every listening TCP socket of the node as JSON: address, port, process and its unit."""


def on_host(name: str, script: str, timeout: float = 60):
    done = api.run_on(name, script, timeout=timeout)
    assert done.returncode == 0, f"{name}: {script}: {done.stdout}{done.stderr}"
    return done.stdout


def connect(address: str, port: int) -> str:
    """`open`, `refused` (nothing listens, nothing filters) or `dropped` (no answer in time)."""
    try:
        socket.create_connection((address, port), timeout=CONNECT_TIMEOUT_S).close()
        return "open"
    except TimeoutError:
        return "dropped"
    except ConnectionRefusedError:
        return "refused"


def connect_from(host: str, address: str, port: int) -> str:
    """The same, from a lab host (a member of the cluster)."""
    script = (
        "import socket\ntry:\n"
        f"    socket.create_connection(({address!r}, {port}), timeout={CONNECT_TIMEOUT_S}).close(); print('open')\n"
        "except TimeoutError: print('dropped')\nexcept ConnectionRefusedError: print('refused')\n"
    )
    return on_host(host, f"python3 -c {shlex.quote(script)}").strip()


def listeners(host: str) -> list[dict]:
    return [json.loads(line) for line in on_host(host, f"python3 -c {shlex.quote(LISTENERS)}").splitlines() if line]


def is_loopback(address: str) -> bool:
    return address.startswith(("127.", "::ffff:127.")) or address == "::1"


@pytest.fixture(scope="module")
def serving(served_stack):
    """The stack answering a chat completion through its endpoint, under the firewall."""
    outputs = served_stack.outputs()
    assert chat(outputs["openai_base_url"], outputs["api_key"], outputs["model"], "Hello!").strip()
    return outputs


def test_every_node_holds_the_stacks_table(serving):
    for host in (HEAD, WORKER):
        table = on_host(host, f"nft list table {TABLE}")
        assert "elements = { 10.201.0.11, 10.201.0.12 }" in table, table
        assert on_host(host, "systemctl is-active rvs-firewall.service; systemctl is-enabled rvs-firewall.service").split() == [
            "active", "enabled",
        ]  # fmt: skip
        assert on_host(host, "nft list tables").split() == ["table", "inet", "ray_vllm_stack"]


def test_a_non_member_reaches_the_api_but_no_cluster_port(serving):
    """From the controller (10.201.0.1, on the lab's bridge, no member): the API front and sshd
    answer; GCS, the raylet, the Ray client server, Ray's metrics, vLLM's own port and a pipeline
    socket do not."""
    pipeline = next(
        entry["port"] for entry in listeners(HEAD)
        if entry["unit"] in STACK_UNITS and entry["address"] == HEAD_ADDRESS and entry["port"] >= 32768
    )  # fmt: skip
    ports = (8000, 22, 6379, 6380, 10001, 44217, 8001, pipeline)
    started = time.monotonic()
    with ThreadPoolExecutor(len(ports)) as pool:
        seen = dict(zip(ports, pool.map(lambda port: connect(HEAD_ADDRESS, port), ports)))
    assert seen == {8000: "open", 22: "open", 6379: "dropped", 6380: "dropped", 10001: "dropped", 44217: "dropped",
                    8001: "dropped", pipeline: "dropped"}, seen  # fmt: skip
    print(f"probes from the controller: {seen} in {time.monotonic() - started:.1f} s")
    # Ports that are not the stack's are none of the table's business: nothing listens, so refused.
    assert connect(HEAD_ADDRESS, 12345) == "refused"
    # The members reach the same cluster ports.
    assert connect_from(WORKER, HEAD_ADDRESS, 6379) == "open"
    assert connect_from(WORKER, HEAD_ADDRESS, pipeline) == "open"


def test_every_listener_of_the_stack_is_in_required_ports(served_stack, serving):
    """During serving, each TCP port a Ray or vLLM process listens on (loopback aside) is covered by
    a rule of `required_ports` for that node: the rules and the firewall stay complete."""
    rules = serving["required_ports"]
    uncovered, survey = [], {}
    for host in (HEAD, WORKER):
        applicable = [port for rule in rules if rule["to"] == "all nodes" or host == HEAD for port in parse_ports(rule["ports"])]
        found = [entry for entry in listeners(host) if entry["unit"] in STACK_UNITS]
        assert found, f"no listener of the stack's units on {host}"
        survey[host] = sorted({(entry["port"], entry["process"]) for entry in found if not is_loopback(entry["address"])})
        uncovered += [(host, entry) for entry in found if not is_loopback(entry["address"]) and not covers(applicable, entry["port"])]
    print("listeners of the stack's units (loopback aside):", json.dumps(survey))
    assert uncovered == [], uncovered


def test_a_table_removed_by_hand_is_drift_that_up_repairs(served_stack, serving):
    on_host(WORKER, f"nft delete table {TABLE}")
    served_stack.project.run("refresh", "--yes")
    assert served_stack.planned_changes() == {f"{WORKER}-firewall": "update"}
    served_stack.timed("repair firewall", "up", "--yes", "--skip-preview")
    assert "ray_vllm_stack" in on_host(WORKER, "nft list tables")
    assert served_stack.planned_changes() == {}


def test_the_rules_come_back_after_a_reboot(served_stack, serving):
    api.crash(WORKER)
    api.start(WORKER)
    assert "elements = { 10.201.0.11, 10.201.0.12 }" in on_host(WORKER, f"nft list table {TABLE}")
    served_stack.timed("up after reboot", "up", "--yes", "--refresh", "--skip-preview")
    outputs = served_stack.outputs()
    assert chat(outputs["openai_base_url"], outputs["api_key"], outputs["model"], "Hello again!").strip()
