"""Wakes SSE streams when the store commits events, and workers' long polls when a lease or a
kill order is written. Called from any thread; waited on in the event loop. Events written by
other processes arrive through LISTEN/NOTIFY on PostgreSQL (store/wakeups.py); streams also
poll once a second."""

from __future__ import annotations

import asyncio
import contextlib
import secrets


class Broadcaster:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._boot = secrets.token_hex(4)
        self._fired = 0  # how many times it woke its waiters

    @property
    def seen(self) -> str:
        """A token of the wake-ups so far (this process's own: another replica's differs)."""
        return f"{self._boot}:{self._fired}"

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Thread-safe: wake every waiter."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._fire)

    def _fire(self) -> None:
        self._fired += 1
        if self._event is not None:
            self._event.set()
            self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        event = self._event
        if event is None:
            await asyncio.sleep(timeout)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    async def wait_past(self, seen: str | None, timeout: float) -> str:
        """Return at once if there was a wake-up since `seen` (a token from `seen`), else wait
        for the next one up to `timeout`; returns the token to send next time."""
        if seen == self.seen:
            await self.wait(timeout)
        return self.seen
