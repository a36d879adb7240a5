#!/usr/bin/env python3
"""Probe whether a Ray cluster's SERVERS refuse callers without the right token.

Ray's own client refuses to start with RAY_AUTH_MODE=token and no token, before it
connects at all; a test built on that passes against an open cluster. This probe
speaks to each surface directly, without Ray's client-side auth interceptors, three
ways: the right token, a wrong token, and no token at all.

How Ray (2.5x/2.60 token mode) carries the token:
  gRPC  metadata  `authorization: Bearer <token>`; refusal is status UNAUTHENTICATED
        (GCS/raylet, C++: "InvalidAuthToken: Authentication token is missing or
        incorrect"; Python servers such as the Ray client server: "Invalid or missing
        authentication token").
  HTTP  header `Authorization: Bearer <token>` (fallbacks: `X-Ray-Authorization`,
        cookie `ray-authentication-token`); no token -> 401, wrong token -> 403.
        A few dashboard paths are public on purpose (/, /static/*, /api/healthz,
        /api/gcs_healthz, /api/authentication_mode, ...).

Runs with the node venv's python (ray, grpcio, stdlib) from any machine:

  python ray_auth_probe.py --gcs HOST:PORT --client HOST:PORT \
      --dashboard http://HOST:PORT --token-file FILE [--disabled-client]
      [--raylet HOST:PORT] [--agent-grpc HOST:PORT] [--timeout S]

Prints one JSON object. For each surface and each way:
  {"accepted": true|false|null, "kind": ..., "detail": "<status / error text>"}
  accepted=false only for a refusal recognisably from the server (gRPC
  UNAUTHENTICATED/PERMISSION_DENIED, HTTP 401/403); accepted=null when nothing
  answered (connection refused, timeout) or the answer was unexpected.
Each surface gets a verdict: "enforced" (right accepted, wrong and none refused by
the server), "OPEN" (wrong or none accepted), or "inconclusive".
Exit status: 0 all enforced, 1 any surface OPEN or the right token refused,
2 otherwise inconclusive.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

AUTH_KEY = "authorization"  # gRPC metadata keys are lower case
BEARER = "Bearer "
GRPC_REFUSED = {"UNAUTHENTICATED", "PERMISSION_DENIED"}
GRPC_UNREACHABLE = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"}
# What each server says when it refuses; used to recognise a refusal in a driver's traceback.
SERVER_REFUSAL_TEXTS = (
    "InvalidAuthToken",
    "Invalid or missing authentication token",
    "Unauthorized: Missing authentication token",
    "Forbidden: Invalid authentication token",
    "StatusCode.UNAUTHENTICATED",
)


def _result(accepted, kind, detail, started):
    return {"accepted": accepted, "kind": kind, "detail": detail, "elapsed_s": round(time.monotonic() - started, 3)}


def _ways(token: str) -> dict[str, str | None]:
    wrong = secrets.token_hex(max(16, len(token) // 2))
    while wrong == token:  # pragma: no cover - 2**-128
        wrong = secrets.token_hex(max(16, len(token) // 2))
    return {"right": token, "wrong": wrong, "none": None}


# --- gRPC -----------------------------------------------------------------------------


def _grpc_call(target: str, method: str, request, response_cls, token: str | None, timeout: float) -> dict:
    """One unary call on a raw channel: no Ray interceptor adds or checks anything."""
    import grpc

    started = time.monotonic()
    metadata = [(AUTH_KEY, BEARER + token)] if token is not None else []
    channel = grpc.insecure_channel(target)
    try:
        call = channel.unary_unary(
            method, request_serializer=request.SerializeToString, response_deserializer=response_cls.FromString
        )
        reply = call(request, metadata=metadata, timeout=timeout)
        return _result(True, "ok", f"OK: {type(reply).__name__} ({reply.ByteSize()} bytes)", started)
    except grpc.RpcError as error:
        code = error.code().name if error.code() else "UNKNOWN"
        detail = f"{code}: {error.details()}"
        if code in GRPC_REFUSED:
            return _result(False, "refused_by_server", detail, started)
        if code in GRPC_UNREACHABLE:
            return _result(None, "connection_error", detail, started)
        return _result(None, "unexpected", detail, started)
    finally:
        channel.close()


def _grpc_surfaces(args) -> dict[str, tuple[str, str, object, object]]:
    """(target, full method name, request, response class) per gRPC surface asked for."""
    surfaces = {}
    if args.gcs:
        from ray.core.generated import gcs_service_pb2 as gcs

        # Read-only and cheap: one node's info. The C++ server checks the token before any handler.
        surfaces["gcs"] = (
            args.gcs,
            "/ray.rpc.NodeInfoGcsService/GetAllNodeInfo",
            gcs.GetAllNodeInfoRequest(limit=1),
            gcs.GetAllNodeInfoReply,
        )
    if args.client:
        from ray.core.generated import ray_client_pb2 as rc

        # PING is answered by the proxier itself (no per-client server is spawned);
        # the Python auth interceptor wraps every method, PING included.
        surfaces["client"] = (
            args.client,
            "/ray.rpc.RayletDriver/ClusterInfo",
            rc.ClusterInfoRequest(type=rc.ClusterInfoType.PING),
            rc.ClusterInfoResponse,
        )
    if args.raylet:
        from ray.core.generated import node_manager_pb2 as nm

        surfaces["raylet"] = (
            args.raylet,
            "/ray.rpc.NodeManagerService/GetSystemConfig",
            nm.GetSystemConfigRequest(),
            nm.GetSystemConfigReply,
        )
    if args.agent_grpc:
        from ray.core.generated import reporter_pb2 as rp

        surfaces["agent_grpc"] = (
            args.agent_grpc,
            "/ray.rpc.LogService/ListLogs",
            rp.ListLogsRequest(glob_filter="__ray_auth_probe_matches_nothing__"),
            rp.ListLogsReply,
        )
    return surfaces


# --- HTTP -----------------------------------------------------------------------------


def _http_call(url: str, method: str, body: bytes | None, token: str | None, passed_auth: set[int], timeout: float):
    started = time.monotonic()
    headers = {"Accept": "application/json", "User-Agent": "ray-auth-probe"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = BEARER + token
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read(200).decode(errors="replace")
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read(200).decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return _result(None, "connection_error", f"{type(reason).__name__}: {reason}", started)
    detail = f"HTTP {status}: {' '.join(text.split())[:160]}"
    if status in (401, 403):
        return _result(False, "refused_by_server", detail, started)
    if status in passed_auth:
        return _result(True, "ok", detail, started)
    return _result(None, "unexpected", detail, started)


def _http_surfaces(base: str) -> dict[str, tuple[str, str, bytes | None, set[int]]]:
    base = base.rstrip("/")
    return {
        "dashboard_jobs_get": (f"{base}/api/jobs/", "GET", None, {200}),
        # An empty submission: past the auth middleware the job handler rejects it with 400
        # ("entrypoint" missing), so the right token proves auth without starting a job.
        "dashboard_jobs_post": (f"{base}/api/jobs/", "POST", b"{}", {200, 400}),
        "dashboard_version": (f"{base}/api/version", "GET", None, {200}),
    }


# --- a real driver with auth off -------------------------------------------------------

_DRIVER = r"""
import io, json, logging, sys, traceback
address = sys.argv[1]
log = io.StringIO()
handler = logging.StreamHandler(log)
handler.setLevel(logging.DEBUG)
for name in ("ray.util.client", "ray.util.client.worker"):
    logging.getLogger(name).setLevel(logging.DEBUG)
    logging.getLogger(name).addHandler(handler)
import ray
out = {"address": address}
if not address.startswith("ray://"):
    # Ray's own GCS client, as ray.init uses it, with auth off: the first RPC it makes.
    try:
        from ray._raylet import GcsClient
        client = GcsClient(address=address)
        out["gcs_client"] = "connected: %d node(s)" % len(client.get_all_node_info())
        out["gcs_client_connected"] = True
    except BaseException as error:
        out["gcs_client"] = "%s: %s" % (type(error).__name__, error)
        out["gcs_client_connected"] = False
try:
    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    out["init_connected"] = True
    out["init"] = "connected: resources %s" % sorted(ray.cluster_resources())
    ray.shutdown()
except BaseException as error:
    out["init_connected"] = False
    out["init"] = "%s: %s" % (type(error).__name__, error)
    out["traceback"] = "".join(traceback.format_exception(error))[-3000:]
out["client_log"] = log.getvalue()[-2000:]
print("RAY_AUTH_PROBE_RESULT " + json.dumps(out))
"""


def _disabled_driver(address: str, auth_mode: str, timeout: float) -> dict:
    """`ray.init(address)` in a fresh python with RAY_AUTH_MODE=disabled (or unset) and no token anywhere."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ray-auth-probe-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH_")}
        env.update(
            HOME=home,  # no ~/.ray/auth_token
            RAY_USAGE_STATS_ENABLED="0",
            # Fail fast: one GCS connect attempt (default ~20 x 1s), short Ray client backoff (default 5..30s).
            RAY_gcs_server_port_wait_time_s="2",
            RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S="1",
            RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S="2",
        )
        if auth_mode != "unset":
            env["RAY_AUTH_MODE"] = auth_mode
        try:
            run = subprocess.run(
                [sys.executable, "-c", _DRIVER, address],
                env=env, cwd=home, capture_output=True, text=True, timeout=timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return _result(None, "timeout", f"driver did not finish in {timeout}s", started)
    line = next((l for l in run.stdout.splitlines() if l.startswith("RAY_AUTH_PROBE_RESULT ")), None)
    if line is None:
        tail = " ".join((run.stdout + run.stderr).split())[-400:]
        return _result(None, "unexpected", f"driver exited {run.returncode} without a result: {tail}", started)
    out = json.loads(line.split(" ", 1)[1])
    if out.get("gcs_client_connected") or out.get("init_connected"):
        detail = out.get("gcs_client") if out.get("gcs_client_connected") else out["init"]
        return _result(True, "ok", f"server let an auth-disabled driver in: {detail}", started)
    text = "\n".join(str(out.get(k, "")) for k in ("gcs_client", "init", "traceback", "client_log"))
    seen = next((t for t in SERVER_REFUSAL_TEXTS if t in text), None)
    first = out.get("gcs_client") or out["init"]
    if seen:
        hint = next((l.strip() for l in text.splitlines() if seen in l), seen)
        detail = " ".join(first.split())[:240]
        if seen not in detail:
            detail += f" | server said: {hint[:200]}"
        return _result(False, "refused_by_server", detail, started)
    return _result(None, "connection_error", " ".join(first.split())[:300], started)


# --- verdicts --------------------------------------------------------------------------


def _verdict(ways: dict) -> str:
    if ways["wrong"]["accepted"] is True or ways["none"]["accepted"] is True:
        return "OPEN"
    if ways["right"]["accepted"] is True and ways["wrong"]["accepted"] is False and ways["none"]["accepted"] is False:
        return "enforced"
    return "inconclusive"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gcs", metavar="HOST:PORT", help="GCS gRPC address (ray start --port)")
    parser.add_argument("--client", metavar="HOST:PORT", help="Ray client server (--ray-client-server-port)")
    parser.add_argument("--dashboard", metavar="URL", help="dashboard base URL, e.g. http://HOST:8265")
    parser.add_argument("--raylet", metavar="HOST:PORT", help="optional: raylet gRPC (--node-manager-port)")
    parser.add_argument("--agent-grpc", metavar="HOST:PORT", help="optional: dashboard agent gRPC port")
    parser.add_argument("--token-file", required=True, help="file holding the cluster token")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per gRPC/HTTP call (default 5)")
    parser.add_argument(
        "--disabled-client", action="store_true",
        help="also run ray.init(address) in a subprocess with auth disabled and no token, against --gcs and --client",
    )  # fmt: skip
    parser.add_argument(
        "--disabled-client-auth-mode", default="disabled", choices=("disabled", "unset"),
        help="RAY_AUTH_MODE of that subprocess: 'disabled' or removed from its environment",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not (args.gcs or args.client or args.dashboard or args.raylet or args.agent_grpc):
        parser.error("name at least one of --gcs, --client, --dashboard, --raylet, --agent-grpc")
    with open(args.token_file) as handle:
        token = handle.read().strip()
    if not token:
        parser.error(f"{args.token_file} is empty")

    started = time.monotonic()
    ways = _ways(token)
    report: dict = {}
    for surface, (target, method, request, response_cls) in _grpc_surfaces(args).items():
        entry = {"target": target, "call": method}
        for way, way_token in ways.items():
            entry[way] = _grpc_call(target, method, request, response_cls, way_token, args.timeout)
        report[surface] = entry
    if args.dashboard:
        for surface, (url, method, body, passed_auth) in _http_surfaces(args.dashboard).items():
            entry = {"target": url, "call": f"{method} {url}"}
            for way, way_token in ways.items():
                entry[way] = _http_call(url, method, body, way_token, passed_auth, args.timeout)
            report[surface] = entry

    verdicts = {surface: _verdict(entry) for surface, entry in report.items()}
    for surface, verdict in verdicts.items():
        report[surface]["verdict"] = verdict

    if args.disabled_client:
        mode = args.disabled_client_auth_mode
        drivers = {}
        targets = [("gcs", args.gcs), ("client", f"ray://{args.client}" if args.client else None)]
        for surface, address in targets:
            if address:
                result = _disabled_driver(address, mode, timeout=max(60.0, 6 * args.timeout))
                drivers[surface] = {"target": address, "auth_mode": mode, **result}
                verdicts[f"disabled_client_{surface}"] = {True: "OPEN", False: "enforced"}.get(
                    result["accepted"], "inconclusive"
                )
        report["disabled_client"] = drivers

    values = set(verdicts.values())
    report["summary"] = {
        "verdicts": verdicts,
        "all_enforced": values == {"enforced"},
        "any_open": "OPEN" in values,
        "elapsed_s": round(time.monotonic() - started, 3),
    }
    print(json.dumps(report, indent=2, sort_keys=False))
    right_refused = any(entry.get("right", {}).get("accepted") is False for entry in report.values())
    if "OPEN" in values or right_refused:
        return 1
    return 0 if values == {"enforced"} else 2


if __name__ == "__main__":
    sys.exit(main())
