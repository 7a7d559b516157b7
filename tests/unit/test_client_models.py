"""The SDK's typed objects: lenient towards newer servers, faithful to the JSON they came from."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from jobfleet import AsyncClient, Event, Job
from jobfleet.errors import Forbidden, NotFound

JOB: dict[str, Any] = {
    "id": "J1",
    "queue": "ml",
    "job_set": "s",
    "state": "FAILED",
    "attempt": 1,
    "priority": 0,
    "spec": {"command": ["false"]},
    "runs": [{"id": "J1-1", "attempt": 1, "state": "FAILED", "shard": "default",
              "worker": "w", "exit_code": 1, "failure": None,
              "started_at": "2026-11-26T03:37:39.226124Z", "finished_at": None}],
    "failure": {"condition": "EXIT_NONZERO", "exit_code": 1, "message": "exit 1"},
    "actions": [{"name": "retry", "enabled": True, "in_progress": False}],
    "cancel_requested": False,
    "scheduling_reason": None,
    "created_at": "2026-11-26T03:37:39Z",
    "updated_at": "2026-11-26T03:37:40Z",
    "a_field_from_a_newer_server": 1,
}  # fmt: skip


def test_a_job_exposes_the_fields_of_the_contract_and_keeps_its_json() -> None:
    job = Job.parse(JOB)
    assert (job.id, job.state, job.attempt, job.terminal) == ("J1", "FAILED", 1, True)
    assert job.failure is not None and job.failure.condition == "EXIT_NONZERO"
    assert job.runs[0].started_at is not None and job.runs[0].started_at.tzinfo is not None
    assert job.can("retry") and not job.can("cancel")
    assert job.raw is JOB and job.model_extra == {"a_field_from_a_newer_server": 1}
    with pytest.raises(ValueError):
        job.state = "QUEUED"  # type: ignore[misc]


def test_an_event_takes_types_and_states_it_does_not_know() -> None:
    event = Event.parse(
        {"id": 7, "type": "hibernated", "job_id": "J1", "run_id": None, "queue": "ml",
         "job_set": "s", "time": "2026-11-26T03:37:39Z", "state": "FROZEN", "attempt": 0}
    )  # fmt: skip
    assert (event.type, event.state, event.failure, event.cause) == (
        "hibernated",
        "FROZEN",
        None,
        None,
    )


def test_the_async_client_maps_errors_like_the_sync_one() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        status = 404 if request.url.path.endswith("/J9") else 403
        body = {"type": "about:blank", "title": "t", "status": status, "detail": "no"}
        headers = {"content-type": "application/problem+json"}
        return httpx.Response(status, content=json.dumps(body), headers=headers)

    async def main() -> None:
        async with AsyncClient("http://x", "t", transport=httpx.MockTransport(handler)) as c:
            with pytest.raises(NotFound):
                await c.get("J9")
            with pytest.raises(Forbidden):
                await c.submit({"command": ["true"]})

    asyncio.run(main())
