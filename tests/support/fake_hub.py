"""A minimal Hugging Face Hub on loopback: the three endpoints `snapshot_download` uses (revision
info, tree listing, file resolve), recording each request's path and Authorization header."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "c0ffee" * 6 + "c0ff"


class FakeHub:
    def __init__(self, repo: str, files: dict[str, bytes]):
        self.repo, self.files, self.requests = repo, files, []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                hub.requests.append((self.command, self.path, self.headers.get("authorization")))
                body, headers = hub.answer(self.path)
                self.send_response(200 if body is not None else 404)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                if self.command == "GET" and body:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str) -> tuple[bytes | None, dict]:
        as_json = {"Content-Type": "application/json"}
        if path.startswith(f"/api/models/{self.repo}/revision/"):
            siblings = [{"rfilename": name} for name in self.files]
            return json.dumps({"id": self.repo, "sha": COMMIT, "siblings": siblings}).encode(), as_json
        if path.startswith(f"/api/models/{self.repo}/tree/"):
            entries = [{"type": "file", "path": name, "size": len(data), "oid": _oid(data)} for name, data in self.files.items()]
            return json.dumps(entries).encode(), as_json
        for name, data in self.files.items():
            if path == f"/{self.repo}/resolve/{COMMIT}/{name}":
                return data, {"X-Repo-Commit": COMMIT, "ETag": f'"{_oid(data)}"'}
        return None, {}

    def downloads(self) -> list[str]:
        return sorted(path.rsplit("/", 1)[1] for method, path, _ in self.requests if method == "GET" and "/resolve/" in path)

    def close(self) -> None:
        self.server.shutdown()


def _oid(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()
