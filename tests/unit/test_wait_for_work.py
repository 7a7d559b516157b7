"""A remote worker's long poll (`worker/remote.py: watch_for_work`): it wakes the worker when
the server's token moved, not when a poll only timed out, and keeps going after an error."""

from __future__ import annotations

import threading
from typing import Any

from jobfleet.client.sync import ServerUnreachable
from jobfleet.worker.remote import watch_for_work


class FakeLink:
    def __init__(self, answers: list[Any], stop: threading.Event) -> None:
        self.answers = answers
        self.stop = stop
        self.sent: list[str | None] = []

    def wait_for_work(self, worker: str, seen: str | None) -> str:
        self.sent.append(seen)
        answer = self.answers.pop(0)
        if not self.answers:
            self.stop.set()
        if isinstance(answer, Exception):
            raise answer
        return str(answer)


class FakeWorker:
    name = "w1"

    def __init__(self) -> None:
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


def test_the_worker_is_woken_when_the_token_moves_and_not_on_a_timeout() -> None:
    stop = threading.Event()
    link = FakeLink(["a:0", "a:0", ServerUnreachable("http://x"), "a:3", "a:3"], stop)
    worker = FakeWorker()
    watch_for_work(link, worker, stop, every=0)  # type: ignore[arg-type]
    # the first answer wakes it; a timeout (same token) does not; after an error it goes on
    # with the token it had, and wakes it when the token moved
    assert worker.woken == 2
    assert link.sent == [None, "a:0", "a:0", "a:0", "a:3"]
