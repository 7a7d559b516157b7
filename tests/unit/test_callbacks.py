"""Callbacks, the pure parts: signature, retry schedule, ingress checks."""

from __future__ import annotations

import pytest

from jobfleet.callbacks import sign, verify
from jobfleet.callbacks.ingress import check_callbacks, url_problem
from jobfleet.callbacks.schedule import outcome
from jobfleet.config import Settings
from jobfleet.errors import InvalidInput
from jobfleet.failures.policy import Backoff
from jobfleet.models import JobSpec

BACKOFF = Backoff(initial=1, multiplier=2, max=60, jitter=0)


def test_signature_verifies_and_a_changed_body_or_secret_does_not() -> None:
    body = b'{"id":7,"type":"succeeded"}'
    header = sign("k", body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify("k", body, header)
    assert not verify("k", body + b" ", header)
    assert not verify("other", body, header)
    assert not verify("k", body, None)


def test_2xx_delivers() -> None:
    out = outcome(204, attempts=1, now=100.0, backoff=BACKOFF, max_attempts=5)
    assert out.state == "delivered" and out.next_attempt_at is None


@pytest.mark.parametrize("status", [None, 500, 503, 408, 429])
def test_no_answer_5xx_408_429_retry_with_exponential_backoff(status: int | None) -> None:
    delays = [
        outcome(status, attempts=n, now=100.0, backoff=BACKOFF, max_attempts=10).next_attempt_at
        for n in (1, 2, 3, 4)
    ]
    assert [d - 100.0 for d in delays if d is not None] == [1, 2, 4, 8]


@pytest.mark.parametrize("status", [400, 401, 404, 410, 301])
def test_other_answers_give_up_at_once(status: int) -> None:
    out = outcome(status, attempts=1, now=100.0, backoff=BACKOFF, max_attempts=10)
    assert out.state == "failed" and out.next_attempt_at is None


def test_retries_stop_after_max_attempts() -> None:
    assert outcome(500, attempts=4, now=0, backoff=BACKOFF, max_attempts=5).state == "pending"
    assert outcome(500, attempts=5, now=0, backoff=BACKOFF, max_attempts=5).state == "failed"


def test_ingress_allow_list_names_the_field() -> None:
    s = Settings(callbacks={"secret": "k", "allow": ["https://hooks.example.org/"]})
    assert url_problem("https://hooks.example.org/a", s, None) is None
    assert "callbacks.allow" in (url_problem("https://evil.example.org/", s, None) or "")
    specs = [
        JobSpec(command=["true"]),
        JobSpec(command=["true"], callback_url="https://evil.example.org/x"),
    ]
    with pytest.raises(InvalidInput) as err:
        check_callbacks(specs, s, lambda q: None, batch=True)
    assert err.value.extra["errors"][0]["loc"] == ["jobs", 1, "callback_url"]


def test_ingress_needs_a_secret_of_the_queue_or_the_deployment() -> None:
    spec = JobSpec(command=["true"], callback_url="http://127.0.0.1:9/x", queue="q")
    with pytest.raises(InvalidInput, match=r"callbacks\.secret"):
        check_callbacks([spec], Settings(), lambda q: None, batch=False)
    check_callbacks([spec], Settings(), lambda q: "queue-secret" if q == "q" else None, batch=False)


def test_sealed_deployment_refuses_external_callbacks() -> None:
    s = Settings(sealed=True, callbacks={"secret": "k"})
    assert "sealed" in (url_problem("https://hooks.example.org/", s, None) or "")
    assert url_problem("http://127.0.0.1:8080/hook", s, None) is None


def test_callback_events_needs_a_callback_url() -> None:
    with pytest.raises(ValueError, match="callback_events needs a callback_url"):
        JobSpec(command=["true"], callback_events="all")
    assert JobSpec(command=["true"], callback_url="http://h/", callback_events="all")
