"""The deliverer: a thread that claims due callback outbox rows and POSTs them, signed.

It runs beside the scheduler, never in it: a slow or dead receiver costs one of this thread's
pool of senders (`callbacks.concurrency`) for at most `callbacks.timeout`, and nothing else.
A claim lasts the timeout plus a margin; a deliverer that dies mid-send leaves its rows to be
claimed again once the claim expires (at least once; receivers drop duplicates by event id).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

import jobfleet
from jobfleet import metrics
from jobfleet.callbacks.schedule import outcome
from jobfleet.callbacks.signing import (
    ATTEMPT_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from jobfleet.config import Callbacks
from jobfleet.ids import new_id
from jobfleet.store import Store
from jobfleet.store.outbox import Attempt, Delivery

log = logging.getLogger("jobfleet.callbacks")
CLAIM_MARGIN = 30.0  # seconds a claim outlives the send timeout
IDLE_WAIT = 5.0  # at most this long between looks at the outbox when nothing is due


class Deliverer:
    def __init__(
        self,
        store: Store,
        config: Callbacks,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.owner = new_id()
        self.http = httpx.Client(
            timeout=config.timeout,
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": f"jobfleet/{jobfleet.__version__}"},
        )
        self._pool = ThreadPoolExecutor(config.concurrency, thread_name_prefix="jobfleet-callback")
        self._inflight = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="jobfleet-callbacks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        # Sends in flight finish on their own (bounded by the timeout); a row whose result is
        # never recorded is claimed again once its claim expires.
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            idle = self._inflight == 0
        if idle:
            self.http.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
                wait = IDLE_WAIT if self._busy() else self._idle_wait()
            except Exception:
                log.exception("callback delivery pass failed; retrying")
                wait = 1.0
            self._wake.wait(timeout=wait)
            self._wake.clear()

    def _busy(self) -> bool:
        """Every sender is busy: wait for one to finish (it wakes the loop)."""
        with self._lock:
            return self._inflight >= self.config.concurrency

    def _idle_wait(self) -> float:
        due = self.store.next_callback_at()
        if due is None:
            return IDLE_WAIT
        return max(0.01, min(IDLE_WAIT, due - time.time()))

    def run_once(self) -> int:
        """Claim what is due (as many as there are free senders) and start sending it."""
        with self._lock:
            free = self.config.concurrency - self._inflight
        claimed = self.store.claim_callbacks(
            self.owner, limit=free, claim_for=self.config.timeout + CLAIM_MARGIN
        )
        for delivery in claimed:
            with self._lock:
                self._inflight += 1
            self._pool.submit(self._deliver_async, delivery)
        return len(claimed)

    def _deliver_async(self, delivery: Delivery) -> None:
        try:
            self.deliver(delivery)
        except Exception:
            log.exception("recording callback delivery %s failed", delivery.outbox_id)
        finally:
            with self._lock:
                self._inflight -= 1
            self._wake.set()

    def deliver(self, d: Delivery) -> Attempt:
        """Send one claimed delivery, record the attempt, and return it."""
        status, error = self._send(d)
        now = time.time()
        out = outcome(
            status,
            attempts=d.attempts + 1,
            now=now,
            backoff=self.config.backoff,
            max_attempts=self.config.max_attempts if error != NO_SECRET else 1,
        )
        attempt = Attempt(now, status, error, out.state, out.next_attempt_at)
        self.store.record_callback(self.owner, d.outbox_id, attempt)
        metrics.CALLBACK_ATTEMPTS.labels(out.state).inc()
        if out.state == "failed":
            log.warning(
                "callback for event %s of job %s given up after %d attempts: %s",
                d.event_id,
                d.job_id,
                d.attempts + 1,
                error or f"HTTP {status}",
                extra={"job_id": d.job_id, "event_id": d.event_id, "url": d.url},
            )
        return attempt

    def _send(self, d: Delivery) -> tuple[int | None, str | None]:
        secret = d.queue_secret or self.config.secret
        if not secret:
            return None, NO_SECRET
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, d.body),
            EVENT_HEADER: str(d.event_id),
            TIMESTAMP_HEADER: str(int(time.time())),
            ATTEMPT_HEADER: str(d.attempts + 1),
        }
        try:
            r = self.http.post(d.url, content=d.body, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return r.status_code, None


NO_SECRET = "no callback secret is configured (callbacks.secret or the queue's callback_secret)"
