"""The scheduler loop: thin. It reads a snapshot from the store, calls the pure algorithms,
and writes their decisions back. Woken by new events, and at least once a second."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from jobfleet.scheduling.placement import place

if TYPE_CHECKING:
    from jobfleet.store import Store

log = logging.getLogger("jobfleet.scheduler")


class Scheduler:
    def __init__(
        self,
        store: Store,
        *,
        shards: list[str],
        lease_timeout: float,
        housekeeping_every: float = 1.0,
    ) -> None:
        self.store = store
        self.shards = shards
        self.lease_timeout = lease_timeout
        self.housekeeping_every = housekeeping_every
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._next_housekeeping = 0.0
        self._thread = threading.Thread(target=self._loop, name="jobfleet-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                while self.cycle() and not self._stop.is_set():
                    pass
            except Exception:
                log.exception("scheduler cycle failed; retrying")
                self._stop.wait(0.5)
                continue
            self._wake.wait(timeout=self._idle_timeout())
            self._wake.clear()

    def _idle_timeout(self) -> float:
        until_housekeeping = self._next_housekeeping - time.monotonic()
        timeout = max(0.01, min(self.housekeeping_every, until_housekeeping))
        backoff = self.store.next_backoff()
        if backoff is not None:
            timeout = min(timeout, max(0.01, backoff - time.time()))
        return timeout

    def cycle(self) -> int:
        """One scheduling pass over every shard; returns how many jobs moved."""
        moved = 0
        if time.monotonic() >= self._next_housekeeping:
            moved += self.store.expire_leases() + self.store.resolve_dependencies()
            self._next_housekeeping = time.monotonic() + self.housekeeping_every
        for shard in self.shards:
            moved += self.store.route(shard)
            moved += self._place(shard)
        return moved

    def _place(self, shard: str) -> int:
        demands = self.store.pending(shard)
        if not demands:
            return 0
        free, totals = self.store.rooms(shard, fresh_after=time.time() - self.lease_timeout)
        plan = place(demands, free, totals, shard)
        leased = self.store.lease(shard, plan.placed, lease_timeout=self.lease_timeout)
        self.store.set_reasons(plan.reasons)
        return leased
