"""Stands in for `deploys.worker` in the runner's tests: `python -m tests.deploys.fake_worker <result file>`
takes the request and then hangs, as a worker on a half-open connection would."""

import pickle
import sys
import time

if __name__ == "__main__":
    pickle.loads(sys.stdin.buffer.read())
    print("connecting to ghost", file=sys.stderr, flush=True)
    time.sleep(600)
