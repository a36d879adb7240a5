"""The authenticating front of vLLM's OpenAI server, run ON the head with the node's venv Python.

    python api_front.py --listen 0.0.0.0:8000 --upstream http://127.0.0.1:8001 \\
        --key-file /etc/ray-vllm-stack/vllm.env [--tls-cert cert.pem --tls-key key.pem]

vLLM checks `--api-key` only for paths under /v1: /invocations, /tokenize, /metrics, /pause ... answer
anyone. So vLLM listens on the head's 127.0.0.1 only, and this front, the one listener on the public
API port, asks every request but `GET`/`HEAD /health` for `Authorization: Bearer <key>`.

The decision is made on the request target exactly as received (aiohttp's `raw_path`), the same string
that is forwarded: `request.path` is percent-decoded (`/%68ealth` reads `/health`) and `request.url`
drops dot segments (`/health/../v1/models` reads `/v1/models`), so neither may decide. Only the exact
target `/health` is public, without a query string (a health probe needs none).

Bodies stream both ways unbuffered (Server-Sent Events arrive token by token); there is a connect
timeout to vLLM but none on a response (long generations). The key is read from the unit's
EnvironmentFile, never from argv or the environment, and never logged. Exit 2 without a key. Standard
library plus aiohttp only.
"""

import argparse
import asyncio
import hmac
import json
import logging
import ssl
import sys
import time

import aiohttp
from aiohttp import web
from yarl import URL

KEY_NAME = "VLLM_API_KEY"
PUBLIC = {("GET", "/health"), ("HEAD", "/health")}
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host",
     "expect"}  # aiohttp has already answered `Expect: 100-continue`; vLLM must not wait for a second one
)  # fmt: skip
CONNECT_TIMEOUT = 10
SHUTDOWN_GRACE = 10
"""Seconds a SIGTERM leaves requests in flight to finish before they are cut."""

log = logging.getLogger("api_front")
SESSION = web.AppKey("session", aiohttp.ClientSession)


def read_key(path: str) -> str:
    """The last `VLLM_API_KEY=` of a systemd EnvironmentFile (systemd, too, lets the last one win)."""
    key = ""
    with open(path) as lines:
        for line in lines:
            name, assigned, value = line.strip().partition("=")
            if assigned and name.strip() == KEY_NAME:
                key = value.strip()
                if len(key) >= 2 and key[0] == key[-1] and key[0] in "\"'":
                    key = key[1:-1]
    return key


def end_to_end(headers) -> list[tuple[str, str]]:
    """`headers` less the hop-by-hop ones, including those a `Connection` header names."""
    named = {token.strip().lower() for value in headers.getall("Connection", []) for token in value.split(",")}
    return [
        (name, value) for name, value in headers.items()
        if name.lower() not in HOP_BY_HOP | named and not name.lower().startswith("proxy-")
    ]  # fmt: skip


def error(status: int, message: str, code: str, kind: str = "invalid_request_error", headers=None) -> web.Response:
    """An error shaped like OpenAI's, so the clients of vLLM show its message."""
    body = json.dumps({"error": {"message": message, "type": kind, "code": code}})
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


def authorised(request: web.Request, key: bytes) -> bool:
    values = request.headers.getall("Authorization", [])
    if len(values) != 1:
        return False
    scheme, _, token = values[0].partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode("utf-8", "surrogateescape"), key)


def make_app(upstream: str, key: str) -> web.Application:
    key_bytes = key.encode()
    upstream = upstream.rstrip("/")

    async def forward(request: web.Request) -> web.StreamResponse:
        target = request.raw_path
        started, outcome = time.monotonic(), ""
        response: web.StreamResponse | None = None
        try:
            if not target.startswith("/"):  # absolute-form or authority-form: this is no proxy
                response = error(400, "the request target must be a path", "invalid_request_target")
            elif (request.method, target) not in PUBLIC and not authorised(request, key_bytes):
                response = error(
                    401, "Incorrect or missing API key: send `Authorization: Bearer <key>`.", "invalid_api_key",
                    headers={"WWW-Authenticate": "Bearer"},
                )  # fmt: skip
            else:
                response, outcome = await relay(request, URL(upstream + target, encoded=True))
            return response
        except asyncio.CancelledError:
            outcome = " (cut: the client went away)"
            raise
        finally:
            status = response.status if response is not None else "-"
            path = target.partition("?")[0]
            log.info("%s %s %s %s %.3fs%s", request.remote, request.method, path, status,
                     time.monotonic() - started, outcome)  # fmt: skip

    async def relay(request: web.Request, url: URL) -> tuple[web.StreamResponse, str]:
        try:
            upstream_response = await request.app[SESSION].request(
                request.method, url, headers=end_to_end(request.headers), allow_redirects=False,
                data=request.content if request.body_exists else None,
            )  # fmt: skip
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as failure:
            unreachable = error(502, "the model server is not reachable", "upstream_unavailable", "server_error")
            return unreachable, f" ({type(failure).__name__}: {failure})"
        async with upstream_response:
            response = web.StreamResponse(
                status=upstream_response.status, reason=upstream_response.reason,
                headers=end_to_end(upstream_response.headers),
            )  # fmt: skip
            await response.prepare(request)
            try:
                async for chunk in upstream_response.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionError, aiohttp.ClientError) as failure:
                # The client went away (vLLM aborts a generation whose connection closes), or vLLM broke
                # off mid-answer (the client must see a cut, not a complete-looking response).
                upstream_response.close()
                if request.transport is not None:
                    request.transport.close()
                return response, f" (cut: {type(failure).__name__})"
            except asyncio.CancelledError:  # the client went away while vLLM was quiet (see handler_cancellation)
                upstream_response.close()
                raise
        return response, ""

    async def client_session(app: web.Application):
        app[SESSION] = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT, sock_read=None),
            connector=aiohttp.TCPConnector(limit=0),  # vLLM queues requests itself; a pool limit would stall streams
            cookie_jar=aiohttp.DummyCookieJar(),  # one client's cookies must never ride on another's request
            auto_decompress=False,  # bytes pass through as vLLM encoded them
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
        )  # fmt: skip
        yield
        await app[SESSION].close()

    app = web.Application()
    app.cleanup_ctx.append(client_session)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, metavar="HOST:PORT")
    parser.add_argument("--upstream", required=True, metavar="URL", help="e.g. http://127.0.0.1:8001")
    parser.add_argument("--key-file", required=True, help=f"a systemd EnvironmentFile with {KEY_NAME}=<key>")
    parser.add_argument("--tls-cert", metavar="FILE")
    parser.add_argument("--tls-key", metavar="FILE")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        parser.error(f"--listen {args.listen!r} is not HOST:PORT")
    if not args.upstream.startswith("http://"):
        parser.error(f"--upstream {args.upstream!r} is not an http:// URL")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    try:
        key = read_key(args.key_file)
    except (OSError, UnicodeDecodeError) as failure:
        reason = getattr(failure, "strerror", None) or type(failure).__name__  # never the text: it holds the key
        print(f"api_front: cannot read the key file {args.key_file}: {reason}", file=sys.stderr)
        return 2
    if not key:
        print(f"api_front: no {KEY_NAME} in {args.key_file}; refusing to serve without a key", file=sys.stderr)
        return 2
    try:
        context = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    except (OSError, ssl.SSLError) as failure:
        print(f"api_front: cannot load the TLS certificate or key: {failure}", file=sys.stderr)
        return 2

    scheme = "https" if context else "http"
    log.info("api_front: %s://%s forwards to %s", scheme, args.listen, args.upstream)
    web.run_app(
        make_app(args.upstream, key), host=host.strip("[]"), port=int(port), ssl_context=context,
        access_log=None, print=None, shutdown_timeout=SHUTDOWN_GRACE, handle_signals=True,
        handler_cancellation=True,  # a client gone while vLLM is silent (queued, prefilling) still ends its request
    )  # fmt: skip
    log.info("api_front: stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
