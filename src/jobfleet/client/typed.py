"""The SDK's synchronous `Client`: the HTTP API with typed answers (`Job`, `Event`, ...).

It is a thin layer over `JsonClient` (which returns the server's JSON and which the CLI uses),
so both share one transport, one error mapping and one event-stream resume logic.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from types import TracebackType
from typing import Any

import httpx

from jobfleet.client.models import Event, HistoryEntry, Job, JobPage
from jobfleet.client.sync import JsonClient


class Client:
    """A connection to one jobfleet server.

    `server` and `token` default to `JOBFLEET_SERVER` / `JOBFLEET_TOKEN`, then to the profile
    saved by `jobfleet up`, then (server) to http://127.0.0.1:8360. Every error is a
    `jobfleet.JobfleetError`; `wait` raises `WaitTimeout` (also a `TimeoutError`).
    """

    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        timeout: float = 30,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.json = JsonClient(server, token, timeout, transport=transport)
        """The same connection, answering with the server's JSON (dicts)."""

    @property
    def server(self) -> str:
        return self.json.server

    @property
    def token(self) -> str | None:
        return self.json.token

    def close(self) -> None:
        self.json.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(server={self.server!r})"

    # -- jobs ---------------------------------------------------------------------------------

    def submit(self, spec: Mapping[str, Any]) -> Job:
        """Submit one job spec (PRODUCT.md §2); only `command` is required."""
        job: Job = Job.parse(self.json.submit(spec))
        return job

    def submit_many(self, specs: Sequence[Mapping[str, Any]]) -> builtins.list[Job]:
        """Submit a batch in one request, all or nothing; the jobs in the order given."""
        return [Job.parse(j) for j in self.json.submit_many(specs)]

    def get(self, job_id: str) -> Job:
        job: Job = Job.parse(self.json.get(job_id))
        return job

    def list(
        self,
        queue: str | None = None,
        job_set: str | None = None,
        state: str | None = None,
        label: str | Sequence[str] | None = None,
        q: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> JobPage:
        """One page, newest first; pass `page.next_cursor` as `cursor` for the next."""
        page = self.json.list(queue, job_set, state, label, q, limit=limit, cursor=cursor)
        parsed: JobPage = JobPage.parse(page)
        return parsed

    def iter_jobs(
        self,
        queue: str | None = None,
        job_set: str | None = None,
        state: str | None = None,
        label: str | Sequence[str] | None = None,
        q: str | None = None,
        page_size: int = 1000,
    ) -> Iterator[Job]:
        """Every matching job, fetching page after page as you iterate."""
        for job in self.json.iter_jobs(queue, job_set, state, label, q, page_size):
            yield Job.parse(job)

    def cancel(self, job_id: str, reason: str | None = None) -> Job:
        job: Job = Job.parse(self.json.cancel(job_id, reason))
        return job

    def cancel_job_set(
        self, queue: str, job_set: str, states: Sequence[str] | None = None
    ) -> dict[str, int]:
        """Cancel a job set; {"cancelled": n, "cancel_requested": n}."""
        return {k: int(v) for k, v in self.json.cancel_job_set(queue, job_set, states).items()}

    def reprioritize(self, job_id: str, priority: int) -> Job:
        job: Job = Job.parse(self.json.reprioritize(job_id, priority))
        return job

    def preempt(self, job_id: str) -> Job:
        """Ask for the job's run to be stopped; by default the job is requeued, not counted."""
        job: Job = Job.parse(self.json.preempt(job_id))
        return job

    def retry(self, job_id: str) -> Job:
        """Submit a finished job again as a new job (its `retry_of` names this one)."""
        job: Job = Job.parse(self.json.retry(job_id))
        return job

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it is terminal; `WaitTimeout` after `timeout` seconds."""
        job: Job = Job.parse(self.json.wait(job_id, timeout))
        return job

    def job_events(self, job_id: str) -> builtins.list[Event]:
        """The job's events so far, oldest first."""
        return [Event.parse(e) for e in self.json.events(job_id)]

    def history(self, job_id: str) -> builtins.list[HistoryEntry]:
        return [HistoryEntry.parse(e) for e in self.json.history(job_id)]

    # -- streams ------------------------------------------------------------------------------

    def events(
        self,
        *,
        job_set: str | Sequence[str] | None = None,
        queue: str | Sequence[str] | None = None,
        job_id: str | None = None,
        type: str | Sequence[str] | None = None,
        after: int | None = None,
    ) -> Iterator[Event]:
        """Follow the event stream: every matching event after id `after`, in id order.

        Several job sets (or queues, or types) may be given at once. A dropped connection is
        resumed with the last id seen, so no event is missed or repeated. The iterator never
        ends by itself; break out of it (the connection is closed when it is garbage-collected,
        or at once with `contextlib.closing`).
        """
        stream = self.json.watch(job_id, queue, job_set, after, type)
        with closing(stream):
            for data in stream:
                yield Event.parse(data)

    def logs(self, job_id: str, stream: str = "stdout", run: str | None = None) -> str:
        """A run's output so far (the latest run unless `run`)."""
        return self.json.logs(job_id, stream, run)

    def follow_logs(
        self, job_id: str, stream: str = "stdout", run: str | None = None
    ) -> Iterator[str]:
        """Lines of the run's output as they are written; ends when the run is over."""
        return self.json.follow_logs(job_id, stream, run)

    # -- failures and checkpoints (JSON) -------------------------------------------------------

    def errors(self, job_id: str, limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
        """One page of the job's failures, newest first: {"items": [...], "next_cursor": ...}."""
        return self.json.errors(job_id, limit, cursor)

    def iter_errors(self, job_id: str, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Every failure of every attempt of the job, newest first, page after page."""
        return self.json.iter_errors(job_id, page_size)

    def checkpoints(self, job_id: str) -> builtins.list[dict[str, Any]]:
        """The job's checkpoints (the latest of each run), newest first."""
        return self.json.checkpoints(job_id)

    # -- principals ---------------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        """The principal of this client's token: name, kind, admin, grants."""
        return self.json.whoami()

    # -- arrays, schedules, usage, operating workers (§14) --------------------------------------

    def submit_array(
        self, spec: Mapping[str, Any], size: int, max_parallel: int | None = None
    ) -> tuple[str, builtins.list[Job]]:
        """Submit `size` jobs of one spec; returns (array id, its jobs by index)."""
        answer = self.json.submit_array(spec, size, max_parallel)
        return answer["array_id"], [Job.parse(j) for j in answer["jobs"]]

    def get_array(self, array_id: str) -> dict[str, Any]:
        return self.json.get_array(array_id)

    def cancel_array(self, array_id: str, reason: str | None = None) -> dict[str, Any]:
        return self.json.cancel_array(array_id, reason)

    def cordon(self, worker: str) -> dict[str, Any]:
        return self.json.cordon(worker)

    def uncordon(self, worker: str) -> dict[str, Any]:
        return self.json.uncordon(worker)

    def drain(self, worker: str, timeout: str | float | None = None) -> dict[str, Any]:
        return self.json.drain(worker, timeout)

    def usage(
        self, since: str | None = None, until: str | None = None, group_by: str = "queue"
    ) -> builtins.list[dict[str, Any]]:
        return self.json.usage(since, until, group_by)

    def create_schedule(self, name: str, job: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
        return self.json.create_schedule(name, job, **fields)

    def schedules(self) -> builtins.list[dict[str, Any]]:
        return self.json.schedules()

    def get_schedule(self, name: str) -> dict[str, Any]:
        return self.json.get_schedule(name)

    def update_schedule(self, name: str, **changes: Any) -> dict[str, Any]:
        return self.json.update_schedule(name, **changes)

    def delete_schedule(self, name: str) -> None:
        self.json.delete_schedule(name)

    def pause_schedule(self, name: str) -> dict[str, Any]:
        return self.json.schedule_action(name, "pause")

    def resume_schedule(self, name: str) -> dict[str, Any]:
        return self.json.schedule_action(name, "resume")

    def trigger_schedule(self, name: str) -> Job:
        job: Job = Job.parse(self.json.schedule_action(name, "trigger"))
        return job
