"""What one delivery attempt's outcome means (pure): delivered, retry later, or give up.

A 2xx answer delivers. A network error, a timeout, a 5xx, 408 or 429 is retried after an
exponential backoff (the `callbacks.backoff` policy), until `max_attempts` attempts were made.
Any other answer (3xx, 4xx) will not get better by asking again: it is recorded and given up.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from jobfleet.failures.policy import Backoff

State = Literal["pending", "delivered", "failed"]
RETRY_STATUSES = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class Outcome:
    state: State  # pending: to be retried at `next_attempt_at`
    next_attempt_at: float | None


def retryable(status: int | None) -> bool:
    """No answer (network error, timeout), a 5xx, 408 or 429."""
    return status is None or status >= 500 or status in RETRY_STATUSES


def outcome(
    status: int | None,
    *,
    attempts: int,
    now: float,
    backoff: Backoff,
    max_attempts: int,
    rng: random.Random | None = None,
) -> Outcome:
    """The row's next state after attempt number `attempts` (1-based) got `status`."""
    if status is not None and 200 <= status < 300:
        return Outcome("delivered", None)
    if not retryable(status) or attempts >= max_attempts:
        return Outcome("failed", None)
    return Outcome("pending", now + backoff.delay(attempts, rng))
