"""Readiness probes that run ON a node with the node's venv Python (pushed by `deploys.services`).

    python probes.py ray-node --gcs 10.0.0.1:6379 --ip 10.0.0.2 --resources '{"GPU": 1}' --timeout 120
    python probes.py http --url http://10.0.0.1:8000 --model tiny --unit rvs-vllm.service --timeout 600

Exit 0 when ready. On timeout: exit 1 with the reason, and the unit's last journal lines so the
Pulumi error shows why a service did not come up. Standard library plus Ray only.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request

JOURNAL_LINES = 40


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


def http_ready(url: str, model: str) -> str | None:
    """None when /health answers and /v1/models (with the API key) lists `model`."""
    try:
        urllib.request.urlopen(f"{url}/health", timeout=5).read()
        request = urllib.request.Request(
            f"{url}/v1/models", headers={"Authorization": f"Bearer {os.environ.get('VLLM_API_KEY', '')}"}
        )
        served = [entry["id"] for entry in json.load(urllib.request.urlopen(request, timeout=5))["data"]]
    except OSError as error:
        return f"{url} not ready: {error}"
    return None if model in served else f"{url}/v1/models lists {served}, not {model}"


def journal_tail(unit: str) -> str:
    result = subprocess.run(
        ["journalctl", "-u", unit, "-n", str(JOURNAL_LINES), "--no-pager", "-o", "cat"],
        capture_output=True, text=True,
    )
    return result.stdout


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
            if unit:
                print(f"last lines of {unit}:\n{journal_tail(unit)}", file=sys.stderr)
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
    parser.add_argument("--unit")
    parser.add_argument("--timeout", type=float, default=0)
    args = parser.parse_args(argv)
    if args.probe == "ray-node":
        return wait(lambda: ray_node_alive(args.gcs, args.ip, args.resources), args.timeout, args.unit)
    return wait(lambda: http_ready(args.url, args.model), args.timeout, args.unit)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
