"""Pure failure handling: conditions, FailureInfo, retry policy."""

from jobfleet.failures.classifier import Classifier, ErrorCategory
from jobfleet.failures.conditions import (
    TERMINATION_MESSAGE_LIMIT,
    Condition,
    FailureInfo,
    bounded_message,
)
from jobfleet.failures.policy import Backoff, RetryDecision, RetryPolicy, RetryRule, decide

__all__ = [
    "TERMINATION_MESSAGE_LIMIT",
    "Backoff",
    "Classifier",
    "Condition",
    "ErrorCategory",
    "FailureInfo",
    "RetryDecision",
    "RetryPolicy",
    "RetryRule",
    "bounded_message",
    "decide",
]
