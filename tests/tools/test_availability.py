"""The outage meter against a local endpoint that stops answering for a while, and one that never does."""

from __future__ import annotations

import http.server
import threading

from tools.availability import OutageMeter


class Endpoint:
    def __init__(self):
        self.up = threading.Event()
        self.up.set()
        self.polled = threading.Event()
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                endpoint.polled.set()
                ok = endpoint.up.is_set() and self.headers.get("Authorization") == "Bearer key"
                self.send_response(200 if ok else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_gap_in_service_is_measured_and_a_steady_endpoint_has_none():
    endpoint = Endpoint()
    try:
        with OutageMeter(endpoint.url, "key", interval=0.02) as steady:
            assert endpoint.polled.wait(5)
        assert (steady.failures, steady.longest_gap) == (0, 0.0)  # the control: it answers, no gap
        with OutageMeter(endpoint.url, "key", interval=0.02) as meter:
            endpoint.up.clear()
            stopped = threading.Event()
            stopped.wait(0.5)  # the outage itself, not synchronisation: the meter must see it
            endpoint.up.set()
            endpoint.polled.clear()
            assert endpoint.polled.wait(5)
        assert meter.failures > 0 and 0.4 < meter.longest_gap < 5, (meter.failures, meter.longest_gap)
        with OutageMeter(endpoint.url, "wrong", interval=0.02) as refused:
            endpoint.polled.clear()
            assert endpoint.polled.wait(5)
        assert refused.failures > 0  # a refused key is no service
    finally:
        endpoint.close()
