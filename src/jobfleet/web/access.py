"""Per-queue permissions on the dashboard: the same rules as the API (`server/permissions.py`).

A signed-in principal sees only the queues it may `watch`: other queues' jobs are absent from
every page and feed, and a job of a hidden queue is 404 exactly like an unknown job. Each
action needs its verb on the job's queue (retry is a new submission: it needs `submit`);
a button whose verb is missing is shown disabled, with a tooltip naming the verb.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from jobfleet.server.permissions import Principal, Verb, check_job, visible_queues
from jobfleet.store import JobFilter
from jobfleet.web.common import svc

ACTION_VERBS: dict[str, Verb] = {
    "cancel": Verb.CANCEL,
    "reprioritize": Verb.REPRIORITIZE,
    "preempt": Verb.PREEMPT,
    "retry": Verb.SUBMIT,
}


async def job_queue(request: Request, who: Principal, job_id: str, verb: Verb = Verb.WATCH) -> str:
    """The job's queue once `who` may do `verb` on it: 404 if it cannot see it, else 403."""
    queue = await run_in_threadpool(svc(request).store.job_queue, job_id)
    check_job(who, job_id, queue, verb)
    return queue


def permitted_actions(who: Principal, job: dict[str, Any]) -> list[dict[str, Any]]:
    """The lifecycle's actions of `job`, each enabled only if `who` also has its verb."""
    out = []
    for action in job["actions"]:
        verb = ACTION_VERBS[action["name"]]
        allowed = who.may(verb, job["queue"])
        out.append({**action, "enabled": action["enabled"] and allowed, "needs": verb.value})
        if not allowed:
            out[-1]["denied"] = f"you need the verb {verb.value!r} on queue {job['queue']!r}"
    return out


def visible(who: Principal, names: list[str]) -> list[str]:
    """The names among `names` of the queues `who` may watch."""
    shown = visible_queues(who)
    return names if shown is None else [n for n in names if n in shown]


def watched(who: Principal, flt: JobFilter) -> JobFilter:
    """`flt` narrowed to the queues `who` may watch (a filter on a hidden queue finds none)."""
    return replace(flt, visible=visible_queues(who))


def cancellable(who: Principal, flt: JobFilter) -> JobFilter:
    """`flt` narrowed to the queues where `who` may cancel: what a bulk cancel touches."""
    return replace(flt, visible=visible_queues(who, Verb.CANCEL))


def may_bulk_cancel(who: Principal, queue: str | None) -> bool:
    """Whether the bulk-cancel button can do anything: `cancel` on the filtered queue, or on
    at least one queue when the filter names none."""
    if queue:
        return who.may(Verb.CANCEL, queue)
    return visible_queues(who, Verb.CANCEL) != []
