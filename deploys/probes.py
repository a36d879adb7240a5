"""Readiness probes that run ON a node with the node's venv Python (pushed by `deploys.services`).

    python probes.py ray-node --gcs 10.0.0.1:6379 --ip 10.0.0.2 --resources '{"GPU": 1}' --timeout 120
    python probes.py http --url http://127.0.0.1:8001 --model tiny --api-key-file /etc/.../vllm.env --timeout 600

Exit 0 when ready: `CONSECUTIVE` answers in a row, `INTERVAL_S` apart (one answer may come from a
process about to fall over). Exit 1 with the reason on timeout, or as soon as the unit shows it keeps
crashing: `failed` (its start limit hit) or restarted `RESTARTS_TO_FAIL` times while waiting (units
that restart forever never fail); the caller follows with the unit's last journal lines, so the
Pulumi error says why a service did not come up without waiting out the timeout.

`--timeout 0` asks whether the service answers now (what a refresh records): up to `LOOK_TRIES`
tries, `LOOK_INTERVAL_S` apart, while the unit is active, so one slow answer of a busy but healthy
service does not read as "not ready" (and get it restarted). Standard library plus Ray only.
"""

import argparse
import json
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request


def ray_node_alive(gcs: str, ip: str, resources: dict) -> str | None:
    """None when the node at `ip` is alive in the cluster with `resources`, else why not."""
    import ray

    ray.init(address=gcs, logging_level="ERROR", log_to_driver=False)
    try:
        nodes = [node for node in ray.nodes() if node["NodeManagerAddress"] == ip and node["Alive"]]
    finally:
        ray.shutdown()
    if not nodes:
        return f"no live Ray node at {ip} in the cluster at {gcs}"
    offered = nodes[0]["Resources"]
    missing = {key: value for key, value in resources.items() if offered.get(key, 0) < value}
    return f"node {ip} lacks resources {missing} (offers {offered})" if missing else None


def api_key(key_file: str) -> str:
    """VLLM_API_KEY from the unit's secret file, read here rather than sourced by a shell."""
    with open(key_file) as lines:
        return next((line.strip().partition("=")[2] for line in lines if line.startswith("VLLM_API_KEY=")), "")


def pinned_context(url: str, cert_file: str) -> ssl.SSLContext:
    """A TLS context for `url` after checking that it presents exactly the certificate in
    `cert_file` (the front's own: a self-signed one, or a CA-signed one for a name, not this address)."""
    host, _, port = urllib.parse.urlsplit(url).netloc.partition(":")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with open(cert_file) as pem:
        expected = ssl.PEM_cert_to_DER_cert(pem.read())
    with socket.create_connection((host, int(port or 443)), timeout=5) as raw, context.wrap_socket(raw) as tls:
        if tls.getpeercert(binary_form=True) != expected:
            raise ssl.SSLError(f"{url} presents another certificate than {cert_file}")
    return context


def http_ready(url: str, model: str, key: str, pin_cert: str | None) -> str | None:
    """None when /health answers and /v1/models (with the API key) lists `model`."""
    try:
        context = pinned_context(url, pin_cert) if pin_cert else None
        urllib.request.urlopen(f"{url}/health", timeout=5, context=context).read()
        request = urllib.request.Request(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"})
        answer = urllib.request.urlopen(request, timeout=5, context=context)
        served = [entry["id"] for entry in json.load(answer)["data"]]
    except OSError as error:
        return f"{url} not ready: {error}"
    return None if model in served else f"{url}/v1/models lists {served}, not {model}"


CONSECUTIVE = 3
INTERVAL_S = 2
RESTARTS_TO_FAIL = 3
LOOK_TRIES = 3
LOOK_INTERVAL_S = 5


def unit_state(unit: str) -> tuple[str, int]:
    """(ActiveState, NRestarts) of `unit`, as systemd reports them to any user."""
    shown = subprocess.run(
        ["systemctl", "show", "-p", "ActiveState", "-p", "NRestarts", unit], capture_output=True, text=True
    ).stdout
    return parse_unit_state(shown)


def parse_unit_state(shown: str) -> tuple[str, int]:
    values = dict(line.partition("=")[::2] for line in shown.splitlines())
    restarts = values.get("NRestarts", "")
    return values.get("ActiveState") or "unknown", int(restarts) if restarts.isdigit() else 0


def attempt(check) -> str | None:
    try:
        return check()
    except Exception as error:  # a cluster still starting answers with all sorts of errors
        return f"{type(error).__name__}: {error}"


def wait(check, timeout: float, unit: str | None, state=unit_state, sleep=time.sleep, clock=time.monotonic) -> int:
    """0 once `check` passed `CONSECUTIVE` times in a row; 1 after `timeout` or once `unit` keeps crashing."""
    deadline = clock() + timeout
    restarts_before = state(unit)[1] if unit else 0
    streak = 0
    while True:
        problem = attempt(check)
        streak = streak + 1 if problem is None else 0
        if streak >= CONSECUTIVE:
            return 0
        if problem is not None:
            crashing = unit and crash_loop(unit, state(unit), restarts_before)
            if crashing:
                print(f"{crashing}: {problem}", file=sys.stderr)
                return 1
            if clock() >= deadline:
                print(f"not ready after {timeout:.0f} s: {problem}", file=sys.stderr)
                return 1
        sleep(INTERVAL_S)


def crash_loop(unit: str, state: tuple[str, int], restarts_before: int) -> str | None:
    """Why `unit` will not come up by waiting longer, or None."""
    active, restarts = state
    if active == "failed":
        return f"{unit} failed (it keeps crashing, or hit its start limit) after {restarts} restarts"
    if restarts - restarts_before >= RESTARTS_TO_FAIL:
        return f"{unit} restarted {restarts - restarts_before} times while waiting (it keeps crashing)"
    return None


def look(check, unit: str | None, state=unit_state, sleep=time.sleep) -> int:
    """0 when `check` passes within `LOOK_TRIES` tries; tries again only while `unit` is active."""
    for index in range(LOOK_TRIES):
        problem = attempt(check)
        if problem is None:
            return 0
        if index == LOOK_TRIES - 1 or (unit and state(unit)[0] != "active"):
            print(f"not ready: {problem}", file=sys.stderr)
            return 1
        sleep(LOOK_INTERVAL_S)
    return 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("probe", choices=["ray-node", "http"])
    parser.add_argument("--gcs")
    parser.add_argument("--ip")
    parser.add_argument("--resources", type=json.loads, default={})
    parser.add_argument("--url")
    parser.add_argument("--model")
    parser.add_argument("--api-key-file")
    parser.add_argument("--pin-cert", help="The certificate an https --url must present.")
    parser.add_argument("--unit")
    parser.add_argument("--timeout", type=float, default=0)
    args = parser.parse_args(argv)
    if args.probe == "ray-node":
        check = lambda: ray_node_alive(args.gcs, args.ip, args.resources)  # noqa: E731
    else:
        key = api_key(args.api_key_file)
        check = lambda: http_ready(args.url, args.model, key, args.pin_cert)  # noqa: E731
    return wait(check, args.timeout, args.unit) if args.timeout > 0 else look(check, args.unit)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
