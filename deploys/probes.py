"""Readiness probes that run ON a node with the node's venv Python (pushed by `deploys.services`).

    python probes.py ray-node --gcs 10.0.0.1:6379 --ip 10.0.0.2 --resources '{"GPU": 1}' --timeout 120
    python probes.py http --url http://127.0.0.1:8001 --model tiny --api-key-file /etc/.../vllm.env --timeout 600

Exit 0 when ready. On timeout: exit 1 with the reason, and the unit's last journal lines so the
Pulumi error shows why a service did not come up. Standard library plus Ray only.
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


def unit_failed(unit: str) -> bool:
    return subprocess.run(["systemctl", "is-failed", "--quiet", unit]).returncode == 0


def wait(check, timeout: float, unit: str | None) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            problem = check()
        except Exception as error:  # a cluster still starting answers with all sorts of errors
            problem = f"{type(error).__name__}: {error}"
        if problem is None:
            return 0
        if time.monotonic() >= deadline or (unit and unit_failed(unit)):
            print(f"not ready after {timeout:.0f} s: {problem}", file=sys.stderr)
            return 1
        time.sleep(2)


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
        return wait(lambda: ray_node_alive(args.gcs, args.ip, args.resources), args.timeout, args.unit)
    key = api_key(args.api_key_file)
    return wait(lambda: http_ready(args.url, args.model, key, args.pin_cert), args.timeout, args.unit)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
