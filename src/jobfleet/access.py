"""Who may do what (pure, no I/O): principals, their per-queue verbs, and the checks.

A principal is the owner of one or more bearer tokens. It is either an admin (every verb on
every queue, plus the `/v1/auth` routes), a user with grants `(queue, verb)`, or a worker
(kind `worker`: it may act only as a worker, under `/v1/workers/...`).

Seeing a queue's jobs and events is the verb `watch`. Every other verb on a queue implies
`watch` on it: a principal that may cancel a queue's jobs must be able to see them. A queue
on which a principal has no verb at all is hidden from it: its jobs answer 404, and lists
and streams leave them out, so job ids of other queues never leak.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

ALL_QUEUES = "*"
"""A grant on queue `*` applies to every queue, present and future."""


class Verb(StrEnum):
    SUBMIT = "submit"
    CANCEL = "cancel"
    REPRIORITIZE = "reprioritize"
    PREEMPT = "preempt"
    WATCH = "watch"


class Kind(StrEnum):
    USER = "user"
    WORKER = "worker"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `grants` holds `(queue, verb)` pairs; queue may be `*`."""

    name: str
    admin: bool = False
    kind: str = Kind.USER.value
    grants: frozenset[tuple[str, str]] = frozenset()
    id: str = ""
    worker_name: str | None = None  # the token is bound to this worker name (workers only)

    @property
    def is_worker(self) -> bool:
        return self.kind == Kind.WORKER.value

    def may_act_as(self, worker: str) -> bool:
        """True if this principal may register and act as worker `worker`."""
        if self.admin:
            return True
        return self.is_worker and self.worker_name in (None, worker)

    def may(self, verb: Verb | str, queue: str) -> bool:
        """True if this principal may do `verb` on `queue` (watch: any verb on it)."""
        if self.is_worker:
            return False
        if self.admin:
            return True
        verb = Verb(verb)
        for q, v in self.grants:
            if q in (queue, ALL_QUEUES) and (v == verb.value or verb is Verb.WATCH):
                return True
        return False

    def queues(self, verb: Verb | str = Verb.WATCH) -> frozenset[str] | None:
        """The queues where `verb` is allowed; None means every queue."""
        if self.is_worker:
            return frozenset()
        if self.admin:
            return None
        verb = Verb(verb)
        names = {q for q, v in self.grants if v == verb.value or verb is Verb.WATCH}
        return None if ALL_QUEUES in names else frozenset(names)


def expand_grants(queues: Iterable[str], verbs: Iterable[Verb | str]) -> list[tuple[str, str]]:
    """Every (queue, verb) pair of the two lists; no verb given means all five verbs."""
    chosen = [Verb(v) for v in verbs] or list(Verb)
    return sorted({(q, v.value) for q in queues for v in chosen})
