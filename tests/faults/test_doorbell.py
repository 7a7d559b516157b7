"""The wake-ups between `up` and its worker process survive the death of either side: ringing
a doorbell whose waiter was SIGKILLed mid-wait returns at once (a multiprocessing Event's set()
waited for that waiter for ever, hanging the survivor's thread)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading

from jobfleet.worker.local import Doorbell
from tests.helpers import wait_for


def _wait_on(bell: Doorbell, ready: Doorbell) -> None:
    ready.ring()
    bell.wait(timeout=60)


def test_ringing_after_the_waiter_was_killed_mid_wait_returns_at_once() -> None:
    ctx = multiprocessing.get_context("spawn")
    bell, ready = Doorbell(ctx), Doorbell(ctx)
    waiter = ctx.Process(target=_wait_on, args=(bell, ready), daemon=True)
    waiter.start()
    try:
        assert ready.wait(timeout=60), "the waiter did not start"
        assert waiter.pid is not None
        os.kill(waiter.pid, signal.SIGKILL)
        waiter.join(10)
        rang = threading.Event()

        def ring_twice() -> None:
            bell.ring()
            bell.ring()
            rang.set()

        threading.Thread(target=ring_twice, daemon=True).start()
        wait_for(rang.is_set, timeout=5, what="ring() to return")
        assert bell.wait(timeout=1) and not bell.wait(timeout=0.05)  # rings answered at once
    finally:
        if waiter.is_alive():
            waiter.kill()
        waiter.join(5)
        waiter.close()
