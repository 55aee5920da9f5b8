"""The supervision policy's pure parts, table-driven: queue limits, cost, running time."""

import datetime
import types

import pytest

from tools.launch import supervise as S

PLAN = types.SimpleNamespace(max_wait_s=7200)  # the one plan field the queue limit reads


@pytest.mark.parametrize(
    "scheduling,max_queue_s,expected",
    [
        ("SPOT", 900, 900),
        ("STANDARD", 60, 60),
        ("FLEX_START", 900, 7200),  # waits for capacity by design: its own max_wait_s
    ],
)
def test_queue_limit(scheduling, max_queue_s, expected):
    assert S.Policy(max_queue_s=max_queue_s).queue_limit(PLAN, scheduling) == expected


@pytest.mark.parametrize(
    "attempt,cost",
    [
        ({"running_s": 3600, "price_per_hour": 2.0, "nodes": 1}, 2.0),
        ({"running_s": 1800, "price_per_hour": 2.0, "nodes": 4}, 4.0),
        ({"running_s": 0, "price_per_hour": 9.0, "nodes": 2}, 0.0),  # queued only: free
        ({"running_s": 3600, "price_per_hour": None, "nodes": 1}, 0.0),  # unknown price counts 0
    ],
)
def test_attempt_cost(attempt, cost):
    assert S.attempt_cost(attempt) == pytest.approx(cost)


def _ts(seconds):
    return None if seconds is None else datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


@pytest.mark.parametrize(
    "start,end,now,expected",
    [
        (None, None, 1000.0, 0.0),  # never ran
        (100.0, None, 400.0, 300.0),  # still running
        (100.0, 250.0, 400.0, 150.0),  # ended (preempted, failed, succeeded)
    ],
)
def test_running_seconds(start, end, now, expected):
    job = types.SimpleNamespace(start_time=_ts(start), end_time=_ts(end))
    assert S.running_seconds(job, now) == expected


def test_policy_round_trips_through_the_state_file():
    policy = S.Policy(until="end", poll_s=5.0, max_queue_s=60, max_attempts=3, max_cost=12.5)
    assert S.Policy.from_json(policy.as_json()) == policy
    assert S.Policy.from_json({"until": "running", "unknown_key": 1}).until == "running"
