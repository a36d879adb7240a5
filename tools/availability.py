"""How long an OpenAI-compatible endpoint stops serving while something changes under it (an
upgrade, a rollback): `GET /v1/models` with the key, polled from a thread.

    with OutageMeter(base_url, api_key) as meter:
        run_the_upgrade()
    print(meter.longest_gap, meter.failures)
"""

from __future__ import annotations

import threading
import time
import urllib.request


class OutageMeter:
    """`longest_gap`: the longest time, in seconds, from the last answer before a failed poll to the
    next answer (or to the end, if none came); `failures`: the polls that got no answer."""

    def __init__(self, base_url: str, api_key: str, interval: float = 0.25, timeout: float = 2.0):
        self._request = urllib.request.Request(f"{base_url}/models", headers={"Authorization": f"Bearer {api_key}"})
        self._interval, self._timeout = interval, timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self.longest_gap = 0.0
        self.failures = 0

    def __enter__(self) -> OutageMeter:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self._timeout + self._interval + 5)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self._request, timeout=self._timeout) as response:
                return response.status == 200
        except OSError:  # refused, reset, timed out, HTTP errors (URLError and HTTPError are OSErrors)
            return False

    def _poll(self) -> None:
        last_answer, failing = time.monotonic(), False
        while not self._stop.wait(self._interval):
            if self._answers():
                if failing:
                    self.longest_gap = max(self.longest_gap, time.monotonic() - last_answer)
                last_answer, failing = time.monotonic(), False
            else:
                self.failures += 1
                failing = True
        if failing:
            self.longest_gap = max(self.longest_gap, time.monotonic() - last_answer)
