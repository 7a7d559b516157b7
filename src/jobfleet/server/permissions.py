"""The permission seam: one place that says who may do what, for every route.

The rules (pure, in `jobfleet.access`): an admin may do everything; a user principal has verbs
(submit, cancel, reprioritize, preempt, watch) per queue, and any verb on a queue lets it see
that queue (`watch`); a worker principal may act only as a worker. How routes use them:

- a route on one job, `/v1/jobs/{job_id}/...`: `Depends(require(Verb.CANCEL))` returns the
  caller once it may cancel that job. A job in a queue the caller cannot see is 404, exactly
  like a job that does not exist (ids of other queues never leak); a job it can see but not act
  on is 403 naming the queue and the verb.
- a route on one queue, `/v1/.../{queue}/...`: `Depends(require(Verb.CANCEL, on="queue"))`,
  403 naming the queue and the verb.
- a list or a stream: `visible_queues(caller)` → the queues to filter on (None: all of them).
- admin-only routes: `AdminCaller`; worker routes (`/v1/workers/...`): `WorkerCaller`;
  any other route: `Caller` (every principal but a worker; workers get 403).
- checks inside a handler, where the queue is only known from the body: `check_queue`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from jobfleet.access import ALL_QUEUES, Kind, Principal, Verb
from jobfleet.errors import Forbidden, NotFound
from jobfleet.server.auth import Bearer, Caller, authenticate, require_principal
from jobfleet.server.deps import Services

__all__ = [
    "ALL_QUEUES",
    "AdminCaller",
    "Caller",
    "Kind",
    "Principal",
    "Verb",
    "WorkerCaller",
    "check_job",
    "check_queue",
    "check_worker",
    "require",
    "require_admin",
    "require_worker",
    "visible_queues",
]


async def require_admin(request: Request, _bearer: Bearer = None) -> Principal:
    who = await require_principal(request)
    if not who.admin:
        raise Forbidden(f"principal {who.name!r} is not an admin: this needs an admin token")
    return who


async def require_worker(request: Request, _bearer: Bearer = None) -> Principal:
    """A worker principal (or an admin, which may do everything)."""
    who = await authenticate(request)
    if not (who.is_worker or who.admin):
        raise Forbidden(
            f"principal {who.name!r} is not a worker: the worker routes need a worker token "
            "(`jobfleet auth create-token NAME --worker`)"
        )
    return who


AdminCaller = Annotated[Principal, Depends(require_admin)]
WorkerCaller = Annotated[Principal, Depends(require_worker)]


def check_worker(who: Principal, worker: str) -> None:
    """403 unless `who` may act as worker `worker` (a bound worker token: only as its own)."""
    if not who.may_act_as(worker):
        raise Forbidden(
            f"this worker token of {who.name!r} is bound to worker {who.worker_name!r}: "
            f"it cannot act as worker {worker!r}"
        )


def check_queue(who: Principal, queue: str, verb: Verb) -> None:
    """403 naming the queue and the verb unless `who` may do `verb` on `queue`."""
    if not who.may(verb, queue):
        raise Forbidden(
            f"principal {who.name!r} may not {verb.value} in queue {queue!r} "
            f"(it needs the verb {verb.value!r} on that queue)",
            queue=queue,
            verb=verb.value,
        )


def check_job(who: Principal, job_id: str, queue: str, verb: Verb) -> None:
    """404 if the job's queue is hidden from `who`, else 403 unless `verb` is allowed."""
    if not who.may(Verb.WATCH, queue):
        raise NotFound(f"no job {job_id!r}")
    check_queue(who, queue, verb)


def visible_queues(who: Principal, verb: Verb = Verb.WATCH) -> list[str] | None:
    """The queues `who` may `verb` (None: every queue), to filter lists and streams with."""
    names = who.queues(verb)
    return None if names is None else sorted(names)


Dependency = Callable[..., Awaitable[Principal]]


def require(verb: Verb, *, on: Literal["job", "queue"] = "job") -> Dependency:
    """A FastAPI dependency: the caller, once it may do `verb` on the route's job or queue.

    `on="job"` reads the path parameter `job_id`; `on="queue"` reads `queue`.
    """
    if on == "queue":

        async def on_queue(queue: str, who: Caller) -> Principal:
            check_queue(who, queue, verb)
            return who

        return on_queue

    async def on_job(job_id: str, request: Request, who: Caller) -> Principal:
        if not who.may(verb, ALL_QUEUES):  # admins and grants on `*` need no lookup
            svc: Services = request.app.state.services
            queue = await run_in_threadpool(svc.store.job_queue, job_id)
            check_job(who, job_id, queue, verb)
        return who

    return on_job
