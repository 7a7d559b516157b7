"""Retry policy (PRODUCT.md §6): the model that validates it and the pure decision it makes."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jobfleet.failures.conditions import NOT_THE_JOBS_FAULT, Condition, FailureInfo
from jobfleet.units import parse_duration

GLOBAL_RETRY_CAP = 5


class Backoff(BaseModel):
    model_config = ConfigDict(extra="forbid")

    initial: float = Field(default=10.0, description="first delay; seconds or '10s'")
    multiplier: float = Field(default=2.0, ge=1.0, le=100.0)
    max: float = Field(default=600.0, description="cap of the delay; seconds or '10m'")
    jitter: float = Field(default=0.2, ge=0.0, le=1.0)

    @field_validator("initial", "max", mode="before")
    @classmethod
    def _duration(cls, v: object) -> float:
        if not isinstance(v, str | int | float):
            raise ValueError("a duration is a number of seconds or a string like '10s'")
        return parse_duration(v)

    def delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Delay before the `retry_number`-th retry (1-based), jittered and capped."""
        base = min(self.max, self.initial * self.multiplier ** max(0, retry_number - 1))
        if self.jitter:
            r = (rng or random).uniform(-self.jitter, self.jitter)
            base = max(0.0, base * (1 + r))
        return min(base, self.max)


class RetryRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on_categories: list[str] = Field(default_factory=list)
    on_conditions: list[Condition] = Field(default_factory=list)
    action: Literal["retry", "fail"]
    counts: bool = True
    memory_factor: float | None = Field(default=None, gt=1.0, le=16.0)
    avoid_worker: bool = False

    def matches(self, failure: FailureInfo) -> bool:
        if self.on_conditions and failure.condition not in self.on_conditions:
            return False
        return not self.on_categories or bool(set(self.on_categories) & set(failure.categories))


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_retries: int = Field(default=0, ge=0, le=100)
    backoff: Backoff = Field(default_factory=Backoff)
    rules: list[RetryRule] = Field(default_factory=list)
    default_action: Literal["retry", "fail"] = "retry"


@dataclass(frozen=True, slots=True)
class RetryDecision:
    retry: bool
    counts: bool
    delay: float
    reason: str
    memory_factor: float | None = None
    avoid_worker: bool = False


def decide(
    policy: RetryPolicy,
    failure: FailureInfo,
    *,
    counted_retries: int,
    total_retries: int,
    rng: random.Random | None = None,
) -> RetryDecision:
    """Retry or fail, after `counted_retries` budgeted and `total_retries` retries in all.

    With no rule matching, a failure that is not the job's fault (preemption, eviction, lost
    worker) is retried at once without counting; anything else follows `default_action`
    within `max_retries`, after the backoff. `GLOBAL_RETRY_CAP` bounds uncounted retries too.
    """
    rule = next((r for r in policy.rules if r.matches(failure)), None)
    backoff = True
    if rule is not None:
        action, counts = rule.action, rule.counts
    elif failure.condition in NOT_THE_JOBS_FAULT:
        action, counts, backoff = "retry", False, False  # not its fault: run again at once
    elif failure.condition is Condition.DEPENDENCY_FAILED:
        action, counts = "fail", True
    else:
        action, counts = policy.default_action, True
    if action == "fail":
        return RetryDecision(False, counts, 0.0, "the retry policy says fail")
    if counts and counted_retries >= policy.max_retries:
        return RetryDecision(False, counts, 0.0, f"max_retries {policy.max_retries} used up")
    if total_retries >= max(GLOBAL_RETRY_CAP, policy.max_retries):
        return RetryDecision(False, counts, 0.0, f"global retry cap {GLOBAL_RETRY_CAP} reached")
    delay = policy.backoff.delay(total_retries + 1, rng) if backoff else 0.0
    return RetryDecision(
        True,
        counts,
        delay,
        "retrying",
        memory_factor=rule.memory_factor if rule else None,
        avoid_worker=rule.avoid_worker if rule else False,
    )
