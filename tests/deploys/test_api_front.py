"""deploys/api_front.py as the head runs it: a real process in front of a fake vLLM, spoken to over
real sockets with http.client, so what is tested is what a client on the network gets."""

import asyncio
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from aiohttp import web

from deploys.api_front import read_key
from stack.tls import self_signed_certificate

pytestmark = pytest.mark.timeout(120)

FRONT = Path(__file__).resolve().parents[2] / "deploys" / "api_front.py"
KEY = "sk-front-test-9f8e7d6c5b4a"
WRONG = "sk-front-test-000000000000"
TIMEOUT = 10
"""Seconds any one socket operation, start or stop may take here."""
PROTECTED = [
    ("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/tokenize"), ("POST", "/detokenize"),
    ("POST", "/invocations"), ("GET", "/metrics"), ("POST", "/score"), ("POST", "/rerank"), ("POST", "/pooling"),
    ("POST", "/pause"), ("GET", "/ping"), ("POST", "/health"), ("GET", "/v1/models?x=1"),
]  # fmt: skip
BYPASSES = ["/health/../v1/models", "//health", "/health?x", "/HEALTH", "/health/", "/%68ealth", "/./health",
            "/health%2F..%2Fmetrics", "/health;x", "http://127.0.0.1/health"]  # fmt: skip


class FakeVllm:
    """vLLM's OpenAI server as far as the front can tell: 127.0.0.1, a port of its own, its own thread.

    It records every request it receives. `POST /v1/completions` streams Server-Sent Events: the first
    at once, the rest only after `release()`, so a test can see the first before the answer is done.
    """

    def __init__(self):
        self.received: list[dict] = []
        self.finished = threading.Event()
        self.disconnected = threading.Event()
        self.gate: asyncio.Event | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(TIMEOUT)
        return self

    def __exit__(self, *_):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)

    def release(self):
        self.loop.call_soon_threadsafe(self.gate.set)

    def paths(self) -> list[str]:
        return [entry["target"] for entry in self.received]

    async def _start(self) -> int:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_route("*", "/{tail:.*}", self._echo)  # /tokenize, /invocations, ...: what came in
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return self.runner.addresses[0][1]

    @web.middleware
    async def _record(self, request, handler):
        body = b"" if request.path == "/v1/completions" else await request.read()
        self.received.append({"method": request.method, "target": request.raw_path, "headers": request.headers.copy(),
                              "body": body})  # fmt: skip
        return await handler(request)

    async def _health(self, _):
        return web.Response()

    async def _metrics(self, _):
        return web.Response(text="vllm:num_requests_running 0\n")

    async def _models(self, _):
        headers = {"X-Request-Id": "r-1", "Keep-Alive": "timeout=99", "Proxy-Authenticate": "Basic"}
        return web.json_response({"object": "list", "data": [{"id": "tiny"}]}, headers=headers)

    async def _echo(self, request):
        received = self.received[-1]
        return web.json_response({"target": request.raw_path, "length": len(received["body"])})

    async def _completions(self, request):
        self.gate = asyncio.Event()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"text": "first"}\n\n')
        while not self.gate.is_set():
            if request.transport is None or request.transport.is_closing():
                self.disconnected.set()  # vLLM aborts the generation here
                return response
            try:
                await asyncio.wait_for(self.gate.wait(), 0.05)
            except TimeoutError:
                pass
        await response.write(b'data: {"text": "second"}\n\ndata: [DONE]\n\n')
        self.finished.set()
        await response.write_eof()
        return response


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Front:
    """api_front.py as a process, its stdout and stderr in one file."""

    def __init__(self, tmp_path: Path, upstream_port: int, *extra: str, key_file: Path | None = None):
        if key_file is None:
            key_file = tmp_path / "vllm.env"
            key_file.write_text(f"# written by ray-vllm-stack\nVLLM_API_KEY={KEY}\n")
        self.port = free_port()
        self.output_path = tmp_path / f"front-{self.port}.log"
        self.args = [
            sys.executable, str(FRONT), "--listen", f"127.0.0.1:{self.port}",
            "--upstream", f"http://127.0.0.1:{upstream_port}", "--key-file", str(key_file), *extra,
        ]  # fmt: skip
        # A key in the environment must be ignored: the file is the only source.
        self.env = {**os.environ, "VLLM_API_KEY": WRONG}

    def __enter__(self):
        with open(self.output_path, "wb") as output:
            self.process = subprocess.Popen(self.args, stdout=output, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + TIMEOUT
        while True:
            assert self.process.poll() is None, f"the front exited {self.process.returncode}: {self.output()}"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                assert time.monotonic() < deadline, f"the front did not listen within {TIMEOUT} s: {self.output()}"
                time.sleep(0.05)

    def __exit__(self, *_):
        self.stop()
        assert KEY not in self.output() and WRONG not in self.output()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(TIMEOUT)
            raise

    def output(self) -> str:
        return self.output_path.read_text()


def call(port, method, target, headers=None, body=None, key=None, context=None):
    """(status, headers, body) of one request; `key` adds the bearer header."""
    headers = dict(headers or {})
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    if context is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    else:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=TIMEOUT, context=context)
    try:
        connection.request(method, target, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module")
def vllm():
    with FakeVllm() as fake:
        yield fake


@pytest.fixture(scope="module")
def front(vllm, tmp_path_factory):
    with Front(tmp_path_factory.mktemp("front"), vllm.port) as running:
        yield running


def assert_refused(status, headers, body):
    assert status == 401
    assert headers["WWW-Authenticate"] == "Bearer"
    message = "Incorrect or missing API key: send `Authorization: Bearer <key>`."
    assert json.loads(body) == {
        "error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}
    }


@pytest.mark.parametrize(("method", "target"), PROTECTED)
def test_every_path_but_health_needs_the_key(front, vllm, method, target):
    body = b'{"prompt": "hi"}' if method == "POST" else None
    before = len(vllm.received)
    assert_refused(*call(front.port, method, target, body=body))
    assert_refused(*call(front.port, method, target, body=body, key=WRONG))
    assert len(vllm.received) == before, "a refused request reached vLLM"
    # Positive control: the right key passes, and vLLM gets the target and the key itself (it checks /v1 again).
    status, _, _ = call(front.port, method, target, body=body, key=KEY)
    assert status == 200
    assert vllm.received[-1]["target"] == target and vllm.received[-1]["method"] == method
    assert vllm.received[-1]["headers"]["Authorization"] == f"Bearer {KEY}"
    assert vllm.received[-1]["body"] == (body or b"")


@pytest.mark.parametrize("authorization", [
    f"Basic {KEY}", KEY, "Bearer", "Bearer ", f"Bearer {KEY}x", f"Bearer {KEY[:-1]}", f"Token {KEY}", "Bearer é",
])  # fmt: skip
def test_only_the_bearer_key_passes(front, vllm, authorization):
    before = len(vllm.received)
    assert_refused(*call(front.port, "GET", "/v1/models", headers={"Authorization": authorization}))
    assert len(vllm.received) == before
    assert call(front.port, "GET", "/v1/models", headers={"Authorization": f"bearer {KEY}"})[0] == 200


def test_two_authorization_headers_are_refused(front):
    connection = http.client.HTTPConnection("127.0.0.1", front.port, timeout=TIMEOUT)
    connection.putrequest("GET", "/v1/models")
    connection.putheader("Authorization", f"Bearer {KEY}")
    connection.putheader("Authorization", f"Bearer {WRONG}")
    connection.endheaders()
    response = connection.getresponse()
    assert_refused(response.status, response.headers, response.read())
    connection.close()


def test_health_is_public_at_exactly_its_path(front, vllm):
    assert call(front.port, "GET", "/health")[0] == 200
    status, _, body = call(front.port, "HEAD", "/health")
    assert (status, body) == (200, b"")
    assert vllm.paths()[-2:] == ["/health", "/health"]
    before = len(vllm.received)
    for target in BYPASSES:
        status, headers, body = call(front.port, "GET", target)
        assert status in (400, 401), target  # 400: an absolute-form target, which no client of an origin sends
        assert status == 400 or headers["WWW-Authenticate"] == "Bearer"
    assert len(vllm.received) == before, "a bypass reached vLLM"
    # Positive control: with the key, the target goes on exactly as sent, not as aiohttp normalises it.
    for target in ["/health/../v1/models", "//health", "/health?x", "/%68ealth"]:
        call(front.port, "GET", target, key=KEY)
        assert vllm.received[-1]["target"] == target


def test_hop_by_hop_headers_are_dropped_both_ways(front, vllm):
    sent = {"Connection": "keep-alive, X-Hop", "X-Hop": "1", "Keep-Alive": "timeout=5", "TE": "trailers",
            "Upgrade": "h2c", "Proxy-Authorization": "Basic eA==", "Host": "api.example", "X-End": "kept",
            "Content-Type": "application/json"}  # fmt: skip
    status, headers, body = call(front.port, "GET", "/v1/models", headers=sent, key=KEY)
    assert (status, json.loads(body)["data"]) == (200, [{"id": "tiny"}])
    got = vllm.received[-1]["headers"]
    for name in ("X-Hop", "Keep-Alive", "TE", "Upgrade", "Proxy-Authorization", "Transfer-Encoding"):
        assert name not in got, name
    assert got["Host"] == f"127.0.0.1:{vllm.port}" and got.get("Connection", "keep-alive") == "keep-alive"
    assert got["X-End"] == "kept" and got["Content-Type"] == "application/json"
    assert "User-Agent" not in got and got["Accept-Encoding"] == "identity"  # the client's, not aiohttp's gzip
    # From vLLM back: its end-to-end headers pass, its hop-by-hop ones stop here.
    assert headers["X-Request-Id"] == "r-1" and headers["Content-Type"].startswith("application/json")
    assert "Proxy-Authenticate" not in headers and headers.get("Keep-Alive") != "timeout=99"


def test_a_chunked_upload_arrives_whole(front, vllm):
    chunks = [b'{"prompt": "', b"x" * 100_000, b'"}']
    connection = http.client.HTTPConnection("127.0.0.1", front.port, timeout=TIMEOUT)
    connection.request("POST", "/tokenize", body=iter(chunks), encode_chunked=True,
                       headers={"Authorization": f"Bearer {KEY}", "Transfer-Encoding": "chunked"})  # fmt: skip
    response = connection.getresponse()
    assert (response.status, json.loads(response.read())["length"]) == (200, 100_014)
    connection.close()
    assert vllm.received[-1]["body"] == b"".join(chunks)


def open_stream(port: int, context=None) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    connection_class = http.client.HTTPConnection if context is None else http.client.HTTPSConnection
    extra = {} if context is None else {"context": context}
    connection = connection_class("127.0.0.1", port, timeout=TIMEOUT, **extra)
    body = json.dumps({"model": "tiny", "prompt": "hi", "stream": True})
    connection.request("POST", "/v1/completions", body=body,
                       headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})  # fmt: skip
    return connection, connection.getresponse()


def test_events_stream_through_one_by_one(front, vllm):
    vllm.finished.clear()
    connection, response = open_stream(front.port)
    assert response.status == 200 and response.headers["Content-Type"] == "text/event-stream"
    # Read with the socket timeout: a front that buffered would time out here, the answer being unfinished.
    assert response.readline() == b'data: {"text": "first"}\n'
    assert not vllm.finished.is_set()
    vllm.release()
    assert response.read() == b'\ndata: {"text": "second"}\n\ndata: [DONE]\n\n'
    assert vllm.finished.wait(TIMEOUT)
    connection.close()


def test_a_client_that_goes_away_is_seen_by_vllm(front, vllm):
    vllm.disconnected.clear()
    connection, response = open_stream(front.port)
    assert response.readline() == b'data: {"text": "first"}\n'
    connection.sock.shutdown(socket.SHUT_RDWR)
    connection.close()
    assert vllm.disconnected.wait(TIMEOUT), "vLLM kept generating for a client that had gone"
    assert call(front.port, "GET", "/v1/models", key=KEY)[0] == 200  # and the front still serves


def test_vllm_down_is_a_502(tmp_path):
    with Front(tmp_path, free_port()) as front:
        status, headers, body = call(front.port, "GET", "/v1/models", key=KEY)
        assert (status, headers["Content-Type"]) == (502, "application/json; charset=utf-8")
        assert json.loads(body)["error"]["code"] == "upstream_unavailable"
        assert_refused(*call(front.port, "GET", "/v1/models"))  # the key is checked before vLLM is asked


def test_tls_serves_https_with_the_stack_certificate(tmp_path, vllm):
    cert_pem, key_pem = self_signed_certificate("127.0.0.1", days=1)
    (tmp_path / "cert.pem").write_text(cert_pem)
    (tmp_path / "key.pem").write_text(key_pem)
    tls = ["--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem")]
    with Front(tmp_path, vllm.port, *tls) as front:
        trusting = ssl.create_default_context(cadata=cert_pem)
        assert call(front.port, "GET", "/health", context=trusting)[0] == 200
        assert call(front.port, "GET", "/v1/models", key=KEY, context=trusting)[0] == 200
        assert_refused(*call(front.port, "GET", "/v1/models", context=trusting))
        connection, response = open_stream(front.port, context=trusting)
        assert response.readline() == b'data: {"text": "first"}\n'
        vllm.release()
        assert response.read().endswith(b"data: [DONE]\n\n")
        connection.close()
        # Negative controls: a client that trusts only the system CAs refuses the certificate, and plain
        # HTTP to the TLS port gets no answer.
        with pytest.raises(ssl.SSLCertVerificationError):
            call(front.port, "GET", "/health", context=ssl.create_default_context())
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            call(front.port, "GET", "/health")


def test_sigterm_lets_a_stream_finish_and_logs_no_secret(tmp_path, vllm):
    with Front(tmp_path, vllm.port) as front:
        call(front.port, "GET", "/v1/models?api_key=in-query", key=KEY)
        call(front.port, "GET", "/v1/models", key=WRONG)
        call(front.port, "GET", "/health")
        connection, response = open_stream(front.port)
        assert response.readline() == b'data: {"text": "first"}\n'
        front.process.send_signal(signal.SIGTERM)
        vllm.release()
        assert response.read().endswith(b"data: [DONE]\n\n")
        connection.close()
        assert front.process.wait(TIMEOUT) == 0  # not stop(): a second SIGTERM would cut the graceful shutdown
        lines = front.output().splitlines()
    requests = [line.split()[1:4] for line in lines if not line.startswith("api_front")]
    assert requests == [["GET", "/v1/models", "200"], ["GET", "/v1/models", "401"], ["GET", "/health", "200"],
                        ["POST", "/v1/completions", "200"]]  # fmt: skip
    assert lines[0].startswith("api_front: http://127.0.0.1:") and lines[-1] == "api_front: stopped"
    output = "\n".join(lines)
    for secret in (KEY, WRONG, "in-query", "Bearer", "Authorization", "hi"):
        assert secret not in output


@pytest.mark.parametrize(("content", "problem"), [
    (None, "cannot read the key file"),
    ("", "no VLLM_API_KEY"),
    ("# VLLM_API_KEY=commented-out\n", "no VLLM_API_KEY"),
    ("VLLM_API_KEY=\n", "no VLLM_API_KEY"),
    ("OTHER=sk-front-test-9f8e7d6c5b4a\n", "no VLLM_API_KEY"),
])  # fmt: skip
def test_no_key_no_front(tmp_path, content, problem):
    key_file = tmp_path / "vllm.env"
    if content is not None:
        key_file.write_text(content)
    result = subprocess.run(
        [sys.executable, str(FRONT), "--listen", f"127.0.0.1:{free_port()}", "--upstream", "http://127.0.0.1:1",
         "--key-file", str(key_file)],
        capture_output=True, text=True, timeout=TIMEOUT, env={**os.environ, "VLLM_API_KEY": KEY},
    )  # fmt: skip
    assert result.returncode == 2 and problem in result.stderr
    assert KEY not in result.stdout + result.stderr and "commented-out" not in result.stderr


def test_key_file_reads_like_systemd(tmp_path):
    key_file = tmp_path / "vllm.env"
    key_file.write_text('# a comment\n; another\n\nVLLM_API_KEY=old\n  VLLM_API_KEY = "sk-new"  \nVLLM_API_KEYS=x\n')
    assert read_key(str(key_file)) == "sk-new"
