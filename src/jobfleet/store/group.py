"""Group commit of single submissions: concurrent `POST /v1/jobs` of one job each share one
transaction, so N callers pay for one commit (one WAL flush) instead of N.

The first caller to arrive leads: it takes every submission waiting (its own included),
stores them in one transaction and hands each caller its job. Callers that arrive meanwhile
wait; when the commit is done the first of them leads the next group. Each caller returns only
after the commit that stored its job (a 201 is never sent for a job not yet durable).

Specs are validated before they join a group (the route does it). A group refused as a whole
by a check of the store (an unknown queue, a dependency on no job, a gang that disagrees) is
stored again one submission at a time, so one bad submission fails alone; a database failure
fails every submission of its group (none was stored: one transaction).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from jobfleet.errors import JobfleetError
from jobfleet.models import JobSpec

MAX_GROUP = 1000  # submissions at most in one transaction

Submit = Callable[[list[JobSpec], Any], list[dict[str, Any]]]  # (specs, who)


@dataclass(slots=True)
class _Waiting:
    spec: JobSpec
    actor: Hashable  # who submits: callers are grouped by it
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    view: dict[str, Any] | None = None
    error: BaseException | None = None


class GroupCommit:
    def __init__(self, submit: Submit) -> None:
        self._submit = submit  # (specs, actor) -> job views in order, one transaction
        self._lock = threading.Lock()
        self._queue: list[_Waiting] = []
        self._busy = False
        self.groups = 0  # transactions made (for tests and metrics)

    def submit(self, spec: JobSpec, actor: Hashable) -> dict[str, Any]:
        """Store one spec in a shared transaction; its job view once committed."""
        me = _Waiting(spec, actor)
        with self._lock:
            self._queue.append(me)
            if not self._busy:
                self._busy = me.lead = True
        if not me.lead:
            me.done.wait()
        if me.lead and me.view is None and me.error is None:
            self._lead()
        if me.error is not None:
            raise me.error
        assert me.view is not None
        return me.view

    def _lead(self) -> None:
        with self._lock:
            group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
        try:
            self._store(group)
        finally:
            for w in group:
                if w.view is None and w.error is None:
                    w.error = RuntimeError("the grouped submission was not stored")
            with self._lock:
                nxt = self._queue[0] if self._queue else None
                if nxt is None:
                    self._busy = False
                else:
                    nxt.lead = True  # it leads the next group (it was waiting)
            for w in group:
                w.done.set()
            if nxt is not None:
                nxt.done.set()

    def _store(self, group: list[_Waiting]) -> None:
        self.groups += 1
        by_actor: dict[Hashable, list[_Waiting]] = {}
        for w in group:
            by_actor.setdefault(w.actor, []).append(w)
        for actor, members in by_actor.items():
            try:
                views = self._submit([w.spec for w in members], actor)
            except JobfleetError as exc:
                if len(members) == 1:
                    members[0].error = exc
                    continue
                for w in members:  # refused as a whole: each alone, so one bad one fails alone
                    try:
                        w.view = self._submit([w.spec], actor)[0]
                    except BaseException as exc:
                        w.error = exc
                continue
            except BaseException as exc:  # the database: none of them was stored
                for w in members:
                    w.error = exc
                continue
            for w, view in zip(members, views, strict=True):
                w.view = view
