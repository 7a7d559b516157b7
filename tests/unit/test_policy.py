"""The retry decision (PRODUCT.md §6): pure."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from jobfleet.failures import Condition, FailureInfo, RetryPolicy, decide
from jobfleet.failures.policy import GLOBAL_RETRY_CAP, Backoff


def fail(condition: Condition = Condition.EXIT_NONZERO, *cats: str) -> FailureInfo:
    return FailureInfo(condition=condition, categories=list(cats))


def test_no_policy_means_the_jobs_own_failure_is_final() -> None:
    d = decide(RetryPolicy(), fail(), counted_retries=0, total_retries=0)
    assert not d.retry


@pytest.mark.parametrize(
    "condition", [Condition.PREEMPTED, Condition.EVICTED, Condition.LEASE_EXPIRED]
)
def test_not_the_jobs_fault_is_retried_at_once_without_counting(condition: Condition) -> None:
    d = decide(RetryPolicy(), fail(condition), counted_retries=0, total_retries=0)
    assert (d.retry, d.counts, d.delay) == (True, False, 0.0)


def test_uncounted_retries_stop_at_the_global_cap() -> None:
    d = decide(
        RetryPolicy(),
        fail(Condition.LEASE_EXPIRED),
        counted_retries=0,
        total_retries=GLOBAL_RETRY_CAP,
    )
    assert not d.retry
    assert "global retry cap" in d.reason


def test_max_retries_three_allows_exactly_three_retries() -> None:
    policy = RetryPolicy(max_retries=3)
    verdicts = [decide(policy, fail(), counted_retries=n, total_retries=n).retry for n in range(5)]
    assert verdicts == [True, True, True, False, False]


def test_first_matching_rule_wins() -> None:
    policy = RetryPolicy.model_validate(
        {
            "max_retries": 5,
            "rules": [
                {"on_categories": ["bad-input"], "action": "fail"},
                {"on_conditions": ["OOM_KILLED"], "action": "retry", "memory_factor": 1.5},
            ],
        }
    )
    assert not decide(
        policy, fail(Condition.EXIT_NONZERO, "bad-input"), counted_retries=0, total_retries=0
    ).retry
    oom = decide(policy, fail(Condition.OOM_KILLED), counted_retries=0, total_retries=0)
    assert oom.retry and oom.memory_factor == 1.5


def test_backoff_grows_is_capped_and_jittered_within_bounds() -> None:
    b = Backoff(initial="10s", multiplier=2, max="1m", jitter=0.2)
    rng = random.Random(7)
    delays = [b.delay(n, rng) for n in range(1, 8)]
    assert 8 <= delays[0] <= 12
    assert 16 <= delays[1] <= 24
    assert all(d <= 60 for d in delays)
    assert Backoff(initial=5, jitter=0).delay(3) == 20


@pytest.mark.parametrize(
    "bad",
    [
        {"max_retries": -1},
        {"backoff": {"initial": "soon"}},
        {"rules": [{"action": "maybe"}]},
        {"rules": [{"on_conditions": ["NOPE"], "action": "retry"}]},
        {"default_action": "retry", "bogus": 1},
    ],
)
def test_invalid_policies_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RetryPolicy.model_validate(bad)
