"""The readiness probe's judgement (deploys/probes.py runs on nodes), with fake checks, units and clocks."""

import pytest

from deploys import probes


class Clock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def answers(*outcomes):
    """A check answering each of `outcomes` in turn (None: ready), then the last one forever."""
    queue = list(outcomes)

    def check():
        outcome = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return check


def states(*values):
    queue = list(values)
    return lambda unit: queue.pop(0) if len(queue) > 1 else queue[0]


def run_wait(check, timeout=60, state=states(("active", 0))):
    clock = Clock()
    return probes.wait(check, timeout, "rvs-vllm.service", state=state, sleep=clock.sleep, clock=clock), clock


def test_ready_only_after_several_answers_in_a_row():
    code, clock = run_wait(answers(None, "busy", None, None, None))
    assert code == 0 and len(clock.sleeps) == 4  # the streak started again after "busy"


def test_an_answer_at_the_deadline_gets_its_streak_finished():
    code, clock = run_wait(answers("loading", "loading", None), timeout=4)
    assert code == 0 and clock.now == 8


def test_not_ready_after_the_timeout(capsys):
    code, clock = run_wait(answers(ConnectionRefusedError("refused")), timeout=10)
    assert code == 1 and clock.now == 10
    assert capsys.readouterr().err == "not ready after 10 s: ConnectionRefusedError: refused\n"


def test_a_failed_unit_stops_the_wait_at_once(capsys):
    code, clock = run_wait(answers("down"), timeout=900, state=states(("activating", 0), ("failed", 4)))
    assert code == 1 and clock.now == 0
    assert capsys.readouterr().err == (
        "rvs-vllm.service failed (it keeps crashing, or hit its start limit) after 4 restarts: down\n"
    )


def test_a_unit_that_keeps_restarting_stops_the_wait(capsys):
    restarts = [("active", 7), ("activating", 7), ("activating", 8), ("active", 9), ("activating", 10)]
    code, clock = run_wait(answers("down"), timeout=900, state=states(*restarts))
    assert code == 1 and clock.now == 3 * probes.INTERVAL_S
    assert capsys.readouterr().err == "rvs-vllm.service restarted 3 times while waiting (it keeps crashing): down\n"


def test_a_look_forgives_one_slow_answer_of_a_running_service():
    clock = Clock()
    check = answers("timed out", None)
    assert probes.look(check, "rvs-vllm.service", state=states(("active", 0)), sleep=clock.sleep) == 0
    assert clock.sleeps == [probes.LOOK_INTERVAL_S]


def test_a_look_gives_up_after_its_tries(capsys):
    clock = Clock()
    assert probes.look(answers("timed out"), "rvs-vllm.service", state=states(("active", 0)), sleep=clock.sleep) == 1
    assert len(clock.sleeps) == probes.LOOK_TRIES - 1
    assert capsys.readouterr().err == "not ready: timed out\n"


@pytest.mark.parametrize("active", ["inactive", "failed", "activating"])
def test_a_look_does_not_wait_for_a_unit_that_is_not_running(active):
    clock = Clock()
    assert probes.look(answers("refused"), "rvs-vllm.service", state=states((active, 0)), sleep=clock.sleep) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(("shown", "state"), [
    ("NRestarts=3\nActiveState=activating\n", ("activating", 3)),
    ("ActiveState=inactive\nNRestarts=0\n", ("inactive", 0)),
    ("", ("unknown", 0)),  # systemd without the unit, or no systemd
])  # fmt: skip
def test_unit_state_is_read_from_systemctl_show(shown, state):
    assert probes.parse_unit_state(shown) == state


def test_timeout_zero_looks_and_a_timeout_waits(monkeypatch):
    calls = []
    monkeypatch.setattr(probes, "look", lambda check, unit: calls.append(("look", unit)) or 0)
    monkeypatch.setattr(probes, "wait", lambda check, timeout, unit: calls.append(("wait", timeout)) or 0)
    base = ["ray-node", "--gcs", "10.0.0.1:6379", "--ip", "10.0.0.2", "--unit", "rvs-ray-worker.service"]
    assert probes.main([*base, "--timeout", "0"]) == 0 and probes.main([*base, "--timeout", "180"]) == 0
    assert calls == [("look", "rvs-ray-worker.service"), ("wait", 180.0)]
