"""A bounded schemathesis run over the whole OpenAPI document (issue 12): every operation,
the worker protocol included, fuzzed with valid and invalid data against a real server on
SQLite and PostgreSQL. No answer is a 5xx, and a refused request (4xx) stores nothing.

Bounded: a few derandomized examples per operation and per mode (the same cases every run), no
shrinking beyond hypothesis' default, streams read for a fraction of a second.
"""

from __future__ import annotations

from typing import Any

import requests
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from jobfleet.store.schema import jobs, principals, queues, tokens, workers
from tests.integration.conftest import TOKEN, Api

EXAMPLES = {"body": 20, "other": 4}  # per operation, valid and invalid data mixed
STREAMS = {("GET", "/v1/events"), ("GET", "/v1/jobs/{job_id}/logs")}


def fingerprint(api: Api) -> tuple[Any, ...]:
    """What a refused request must not change: rows of jobs, queues, principals, tokens,
    workers, and what the job actions set (priority, cancel and preempt requests)."""
    with api.store.read() as conn:
        counts = [
            conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
            for t in (jobs, queues, principals, tokens, workers)
        ]
        marks = conn.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(jobs.c.priority), 0),
                sa.func.count().filter(jobs.c.cancel_requested.is_(True)),
                sa.func.count().filter(jobs.c.preempt_requested.is_(True)),
            )
        ).one()
    return (*counts, *marks)


def fuzz(api: Api, op: Any, failures: list[str]) -> None:
    """EXAMPLES cases of one operation, valid and invalid; more where it takes a body."""
    key = (op.method.upper(), op.path)
    examples = EXAMPLES["body" if op.body else "other"]
    timeout = 0.3 if key in STREAMS else 30.0
    headers = {"Authorization": f"Bearer {TOKEN}"}  # admin: past every 401/403 to the code
    cases = st.one_of(
        op.as_strategy(generation_mode=GenerationMode.POSITIVE),
        op.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def run(case: Any) -> None:
        before = state[0]
        response = case.call(base_url=api.url, session=session, headers=headers, timeout=timeout)
        state[0] = fingerprint(api)  # nothing else writes these meanwhile
        where = f"{key[0]} {key[1]} -> {response.status_code}: {case.as_curl_command()}"
        if response.status_code >= 500:
            failures.append(f"{where}\n{response.text[:300]}")
        elif 400 <= response.status_code < 500 and state[0] != before:
            failures.append(f"{where}: refused, but the store changed: {before} -> {state[0]}")

    state = [fingerprint(api)]
    with requests.Session() as session:  # one connection, not one per case
        run()


def test_no_operation_answers_5xx_and_refusals_store_nothing(api: Api) -> None:
    seed = api.submit(command=["true"])  # a real id for the generator to stumble on
    api.wait_state(str(seed["id"]), "SUCCEEDED")
    document = api.http.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    seen: set[tuple[str, str]] = set()
    for result in schema.get_all_operations():
        op = result.ok()
        seen.add((op.method.upper(), op.path))
        fuzz(api, op, failures)
    assert not failures, "\n\n".join(failures[:20])
    documented = {(m.upper(), p) for p, item in document["paths"].items() for m in item}
    assert seen == documented
    assert ("POST", "/v1/workers/{name}/report") in seen  # the worker protocol is in the run
