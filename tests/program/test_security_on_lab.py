"""The served dev stack seen from its network and its hosts: every API path but /health needs the
key, vLLM itself is unreachable from outside the head, nothing of the stack runs as root, secrets
are readable by the service user alone and appear nowhere on the controller. Each refusal is
checked beside its positive control."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from artifacts.paths import CACHE_DIR
from lab import api
from stack.node_steps import stack_venv
from stack.tls import certificate_fingerprint
from tests.artifacts.packages.conftest import cpu_venv_python  # noqa: F401 - a fixture used below

pytestmark = [pytest.mark.lab, pytest.mark.engine]

SECRETS_DIR = "/etc/ray-vllm-stack/secrets"
SERVICE_USER = "ray-vllm"
API = "http://10.201.0.11:8000"
PATHS = [
    ("GET", "/v1/models", None),
    ("POST", "/v1/completions", {"model": "tiny-qwen2", "prompt": "hi", "max_tokens": 2}),
    ("POST", "/invocations", {"model": "tiny-qwen2", "prompt": "hi", "max_tokens": 2}),
    ("POST", "/tokenize", {"model": "tiny-qwen2", "prompt": "hi"}),
    ("POST", "/detokenize", {"model": "tiny-qwen2", "tokens": [1, 2]}),
    ("GET", "/metrics", None),
    ("GET", "/version", None),
    ("GET", "/ping", None),
    ("GET", "/load", None),
    ("POST", "/score", {"model": "tiny-qwen2", "text_1": "a", "text_2": "b"}),
]


def status(method: str, path: str, body: dict | None, key: str | None) -> int:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{API}{path}", data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize(("method", "path", "body"), PATHS, ids=[path for _, path, _ in PATHS])
def test_every_api_path_needs_the_key(served_stack, method, path, body):
    key = served_stack.outputs()["api_key"]
    assert status(method, path, body, None) == 401
    assert status(method, path, body, "wrong-" + key) == 401
    assert status(method, path, body, key) != 401  # the right key passes the front (vLLM may still say 404)


def test_health_is_open_and_vllm_itself_is_not_reachable(served_stack):
    assert status("GET", "/health", None, None) == 200
    # The host firewall drops it from every other machine (no answer): give up after 5 s.
    from_worker = api.run_on("lab2", "timeout 5 bash -c 'exec 3<>/dev/tcp/10.201.0.11/8001' && echo open || echo closed")
    from_head = api.run_on("lab1", "exec 3<>/dev/tcp/127.0.0.1/8001 && echo open || echo closed")
    assert from_worker.stdout.strip() == "closed"
    assert from_head.stdout.strip() == "open"


def test_no_stack_process_runs_as_root(served_stack):
    for host in ("lab1", "lab2"):
        listing = api.run_on(host, "ps -eo user:20,args --no-headers").stdout.splitlines()
        stack = [line for line in listing if any(word in line for word in ("ray", "vllm", "api_front", "raylet", "gcs_server"))]
        stack = [line for line in stack if "ps -eo" not in line and "sshd" not in line]
        assert stack, f"no stack process found on {host}"  # the check below looks at something
        assert all(line.split()[0] == SERVICE_USER for line in stack), "\n".join(stack)


def test_secrets_are_the_service_users_alone(served_stack):
    for host, files in (("lab1", ("ray_token", "vllm.env", "api_front.env")), ("lab2", ("ray_token",))):
        modes = api.run_on(host, f"stat -c '%n %U %a' {SECRETS_DIR} {SECRETS_DIR}/*").stdout.splitlines()
        assert f"{SECRETS_DIR} {SERVICE_USER} 700" in modes
        for name in files:
            assert f"{SECRETS_DIR}/{name} {SERVICE_USER} 600" in modes
            path = f"{SECRETS_DIR}/{name}"
            as_nobody = api.run_on(host, f"setpriv --reuid=65534 --regid=65534 --clear-groups cat {path}")
            as_service = api.run_on(host, f"setpriv --reuid={SERVICE_USER} --regid={SERVICE_USER} --clear-groups cat {path}")
            assert as_nobody.returncode != 0 and "Permission denied" in as_nobody.stderr
            assert as_service.returncode == 0 and as_service.stdout.strip()


def test_no_secret_or_its_hash_on_the_controller(served_stack):
    """State, the provisioning logs and the stack's working files hold neither a secret nor its
    sha256 (nor that of the file it sits in)."""
    key = served_stack.outputs()["api_key"]
    token = api.run_on("lab1", f"cat {SECRETS_DIR}/ray_token").stdout
    assert token and key
    needles = {}
    for name, secret in (("api key", key), ("ray token", token)):
        needles[name] = secret
        needles[f"sha256 of the {name}"] = hashlib.sha256(secret.encode()).hexdigest()
    needles["sha256 of vllm.env"] = hashlib.sha256(f"VLLM_API_KEY={key}\n".encode()).hexdigest()
    places = [served_stack.project.workdir, CACHE_DIR / "logs"]
    texts = {}
    for place in places:
        for root, _, names in os.walk(place):
            for name in names:
                path = os.path.join(root, name)
                if not os.path.islink(path) and os.path.getsize(path) < 64 << 20:
                    with open(path, "rb") as file:
                        texts[path] = file.read().decode(errors="replace")
    state = [path for path in texts if path.endswith(".json") and "stacks" in path]
    assert state, "the stack's state file was not found"  # positive control: the search sees the state
    assert any("ciphertext" in texts[path] for path in state)
    for what, needle in needles.items():
        assert not [path for path, text in texts.items() if needle in text], what


PROBE = Path(__file__).with_name("ray_auth_probe.py")
RAY_SURFACES = ["--gcs", "10.201.0.11:6379", "--client", "10.201.0.11:10001", "--raylet", "10.201.0.11:6380"]


def _verdicts(report: dict) -> dict:
    return report["summary"]["verdicts"]


def test_ray_servers_refuse_wrong_and_missing_tokens_from_a_member(served_stack):
    """On lab2 (a member, with the node's venv, as the service user: a root driver would leave
    root's directories in the user's Ray session): the right token is accepted and a wrong one,
    none, and a driver with auth disabled are refused by the servers themselves."""
    token_file = f"{SECRETS_DIR}/ray_token"
    script = (
        f"cat > /tmp/ray_auth_probe.py <<'PROBE'\n{PROBE.read_text()}PROBE\nchmod 644 /tmp/ray_auth_probe.py\n"
        f"cd / && runuser -u {SERVICE_USER} -- {stack_venv('cpu')}/bin/python /tmp/ray_auth_probe.py {' '.join(RAY_SURFACES)} "
        f"--token-file {token_file} --disabled-client; status=$?; rm -f /tmp/ray_auth_probe.py; exit $status"
    )
    result = api.run_on("lab2", script, timeout=180)
    report = json.loads(result.stdout)
    assert result.returncode == 0, json.dumps(report, indent=1)
    assert set(_verdicts(report).values()) == {"enforced"}, _verdicts(report)


@contextlib.contextmanager
def head_firewall_lifted():
    """The head without its host firewall, which drops Ray's ports from non-members before the
    servers see them (`tests/program/test_firewall_on_lab.py`): what is checked here is the servers'
    own refusal, the layer below. Stopping the unit deletes the table; starting it loads the same
    rules again, so the stack sees no drift."""
    done = api.run_on("lab1", "systemctl stop rvs-firewall.service && ! nft list table inet ray_vllm_stack >/dev/null 2>&1")
    assert done.returncode == 0, done.stderr
    try:
        yield
    finally:
        done = api.run_on("lab1", "systemctl start rvs-firewall.service && nft list table inet ray_vllm_stack >/dev/null")
        assert done.returncode == 0, done.stderr


def test_ray_servers_refuse_a_machine_outside_the_cluster(served_stack, cpu_venv_python, tmp_path):  # noqa: F811
    """From the controller's side of the lab network (not a member), with the head's firewall lifted:
    wrong and missing tokens are refused by the server; the right token (copied for the positive
    control) is accepted."""
    token = tmp_path / "token"
    token.write_text(api.run_on("lab1", f"cat {SECRETS_DIR}/ray_token").stdout)
    with head_firewall_lifted():
        result = subprocess.run(
            [str(cpu_venv_python), str(PROBE), *RAY_SURFACES, "--token-file", str(token)],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    report = json.loads(result.stdout)
    assert result.returncode == 0, json.dumps(report, indent=1)
    assert set(_verdicts(report).values()) == {"enforced"}, _verdicts(report)


def test_tls_front_serves_the_generated_certificate(served_stack):
    """With `security.tls: self-signed` the endpoint is https, the front presents the certificate
    whose fingerprint is the `tls_fingerprint` output, a client verifying against it gets answers
    with the key and 401 without, and plain HTTP on the port gets nothing; turned off, it is http again."""
    project = served_stack.project
    project.run("config", "set", "--path", "security.tls", "self-signed")
    try:
        served_stack.timed("up with TLS on", "up", "--yes", "--skip-preview")
        outputs = served_stack.outputs()
        assert outputs["endpoint_url"] == "https://10.201.0.11:8000"
        presented = ssl.get_server_certificate(("10.201.0.11", 8000), timeout=10)
        assert certificate_fingerprint(presented) == outputs["tls_fingerprint"]
        context = ssl.create_default_context(cadata=presented)
        for key, expected in ((outputs["api_key"], 200), (None, 401)):
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            request = urllib.request.Request("https://10.201.0.11:8000/v1/models", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=30, context=context) as answer:
                    assert answer.status == expected
            except urllib.error.HTTPError as error:
                assert error.code == expected
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            urllib.request.urlopen(f"{API}/v1/models", timeout=10)
    finally:
        project.run("config", "rm", "--path", "security.tls")
        served_stack.timed("up with TLS off", "up", "--yes", "--skip-preview")
    outputs = served_stack.outputs()
    assert outputs["endpoint_url"] == API and outputs.get("tls_fingerprint") is None
