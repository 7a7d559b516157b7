"""The Python SDK (`Client`, `AsyncClient`) against a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

import jobfleet
from jobfleet import AsyncClient, Client, Event, Job
from jobfleet.errors import Forbidden, IllegalTransition, InvalidInput, NotFound
from tests.helpers import wait_for
from tests.integration.conftest import TOKEN, Api
from tests.integration.proxy import cuttable

HAPPY = ["submitted", "queued", "scheduled", "leased", "running", "succeeded"]


@pytest.fixture
def client(api: Api) -> Iterator[Client]:
    with Client(api.url, TOKEN) as c:
        yield c


def test_submit_get_wait_and_the_typed_job(client: Client) -> None:
    job = client.submit(
        {"command": ["sh", "-c", "echo hi"], "job_set": "sdk", "labels": {"k": "v"}}
    )
    assert isinstance(job, Job) and job.state == "QUEUED" and job.job_set == "sdk"
    done = client.wait(job.id, timeout=20)
    assert done.state == "SUCCEEDED" and done.terminal and done.attempt == 1
    run = done.runs[0]
    assert (run.attempt, run.state, run.exit_code, run.worker) == (1, "SUCCEEDED", 0, "w1")
    assert run.started_at is not None and run.finished_at is not None
    assert done.can("retry") and not done.can("cancel")
    assert done.labels == {"k": "v"} and done.failure is None
    assert client.get(job.id).raw == client.json.get(job.id)
    assert client.logs(job.id) == "hi\n"
    assert [e.type for e in client.job_events(job.id)] == HAPPY
    assert client.history(job.id)[-1].state == "SUCCEEDED"


def test_a_failed_job_carries_typed_failure_info(client: Client) -> None:
    job = client.submit({"command": ["sh", "-c", "echo boom >&2; exit 3"]})
    done = client.wait(job.id, timeout=20)
    assert done.state == "FAILED" and done.failure is not None
    assert (done.failure.condition, done.failure.exit_code) == ("EXIT_NONZERO", 3)
    assert done.failure.termination_message == "boom"
    last = client.job_events(job.id)[-1]
    assert last.type == "failed" and last.failure == done.failure


def test_submit_many_list_and_iterate_over_every_page(client: Client) -> None:
    jobs = client.submit_many([{"command": ["true"], "job_set": "pages"} for _ in range(5)])
    assert len(jobs) == 5
    page = client.list(job_set="pages", limit=2)
    assert len(page.items) == 2 and page.next_cursor
    every = list(client.iter_jobs(job_set="pages", page_size=2))
    assert [j.id for j in every] == [j.id for j in reversed(jobs)]  # newest first


def test_cancel_reprioritize_preempt_and_retry(client: Client, api: Api) -> None:
    job = client.submit({"command": ["sleep", "30"]})
    api.wait_state(job.id, "RUNNING")
    assert client.reprioritize(job.id, 9).priority == 9
    preempted = client.preempt(job.id)
    assert preempted.preempt_requested
    wait_for(lambda: (j := client.get(job.id)).state == "RUNNING" and j.attempt == 2)
    cancelled = client.cancel(job.id, reason="done with it")
    assert cancelled.cancel_requested
    assert client.wait(job.id, timeout=20).state == "CANCELLED"
    again = client.retry(job.id)
    assert again.retry_of == job.id and again.id != job.id
    client.cancel(again.id)
    assert client.cancel_job_set("default", "nothing") == {"cancelled": 0, "cancel_requested": 0}


def test_errors_are_exceptions_of_one_root(client: Client, api: Api) -> None:
    with pytest.raises(NotFound):
        client.get("NOSUCHJOB")
    with pytest.raises(InvalidInput) as bad:
        client.submit({"command": ["true"], "resources": {"cpu": -1}})
    assert "resources.cpu" in str(bad.value)
    done = client.wait(client.submit({"command": ["true"]}).id, timeout=20)
    with pytest.raises(IllegalTransition) as illegal:
        client.cancel(done.id)
    assert illegal.value.state == "SUCCEEDED"
    api.store.upsert_queue("ml", config={})
    token = client.json.create_token("viewer", ["default"], ["watch"])["token"]
    with Client(api.url, token) as viewer, pytest.raises(Forbidden):
        viewer.submit({"command": ["true"], "queue": "ml"})
    for exc in (NotFound, InvalidInput, IllegalTransition, Forbidden, jobfleet.Timeout):
        assert issubclass(exc, jobfleet.JobfleetError)


def test_wait_with_a_timeout_raises_timeout(client: Client) -> None:
    job = client.submit({"command": ["sleep", "30"]})
    with pytest.raises(jobfleet.Timeout) as info:
        client.wait(job.id, timeout=0.5)
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, jobfleet.JobfleetError)
    client.cancel(job.id)


def test_events_follow_several_job_sets_and_resume_after_a_forced_disconnect(api: Api) -> None:
    """The connection is cut under the iterator; it reconnects after the last id it yielded
    and the events of a job submitted after the cut arrive, each once."""
    with cuttable(api.url) as proxy, Client(proxy.url, TOKEN) as client:
        first = client.submit({"command": ["true"], "job_set": "one"})
        client.submit({"command": ["true"], "job_set": "elsewhere"})
        client.wait(first.id, timeout=20)
        stream = client.events(job_set=["one", "two"], after=0)
        got: list[Event] = list(itertools.islice(stream, 6))
        before = proxy.accepted
        proxy.cut()
        second = client.submit({"command": ["true"], "job_set": "two"})
        got += list(itertools.islice(stream, 6))
        stream.close()  # type: ignore[attr-defined]
    assert proxy.accepted > before  # connections were made again after the cut
    assert [e.type for e in got] == HAPPY * 2
    assert [e.job_id for e in got] == [first.id] * 6 + [second.id] * 6
    stored = [e["id"] for e in api.store.events_after(0) if e["job_set"] in ("one", "two")]
    assert [e.id for e in got] == stored


def test_follow_logs_yields_lines_until_the_run_ends(client: Client) -> None:
    job = client.submit({"command": ["sh", "-c", "for i in 1 2 3; do echo l$i; sleep 0.1; done"]})
    assert list(client.follow_logs(job.id)) == ["l1", "l2", "l3"]


# -- AsyncClient ------------------------------------------------------------------------------


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=60))


def test_async_client_has_the_same_surface(api: Api) -> None:
    async def main() -> None:
        async with AsyncClient(api.url, TOKEN) as client:
            jobs = await client.submit_many([{"command": ["true"], "job_set": "aio"}] * 3)
            job = await client.submit({"command": ["sh", "-c", "echo x"], "job_set": "aio"})
            done = await client.wait(job.id, timeout=20)
            assert done.state == "SUCCEEDED" and isinstance(done, Job)
            assert await client.logs(job.id) == "x\n"
            assert [e.type for e in await client.job_events(job.id)] == HAPPY
            assert (await client.history(job.id))[-1].state == "SUCCEEDED"
            listed = [j.id async for j in client.iter_jobs(job_set="aio", page_size=2)]
            assert listed == [job.id, *(j.id for j in reversed(jobs))]
            assert (await client.list(job_set="aio", limit=1)).next_cursor
            assert [ln async for ln in client.follow_logs(job.id)] == ["x"]
            with pytest.raises(NotFound):
                await client.get("NOSUCHJOB")
            slow = await client.submit({"command": ["sleep", "30"]})
            with pytest.raises(jobfleet.Timeout):
                await client.wait(slow.id, timeout=0.3)
            await client.reprioritize(slow.id, 4)
            cancelled = await client.cancel(slow.id)  # at once, or asked of its worker
            assert cancelled.state == "CANCELLED" or cancelled.cancel_requested
            assert (await client.wait(slow.id, timeout=20)).state == "CANCELLED"
            assert (await client.retry(slow.id)).retry_of == slow.id
            assert (await client.whoami())["admin"] is True

    run(main())


def test_async_events_resume_after_a_forced_disconnect(api: Api) -> None:
    async def main() -> list[Event]:
        with cuttable(api.url) as proxy:
            async with AsyncClient(proxy.url, TOKEN) as client:
                first = await client.submit({"command": ["true"], "job_set": "aone"})
                await client.wait(first.id, timeout=20)
                got: list[Event] = []
                stream = client.events(job_set="aone", after=0)
                async for event in stream:
                    got.append(event)
                    if len(got) == 6:
                        proxy.cut()
                        await client.submit({"command": ["true"], "job_set": "aone"})
                    if len(got) == 12:
                        break
                await stream.aclose()  # type: ignore[attr-defined]
                return got

    got = run(main())
    assert [e.type for e in got] == HAPPY * 2
    stored = [e["id"] for e in api.store.events_after(0) if e["job_set"] == "aone"]
    assert [e.id for e in got] == stored
