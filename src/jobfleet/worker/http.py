"""The worker's link to the servers over HTTP (`jobfleet worker`): the same methods as the store
gives the local worker of `up`, as calls to `/v1/workers/...`.

A server that cannot be reached (connection refused, reset, timeout, 502/503/504 from a load
balancer) is retried a few times with backoff inside each call; after that the call raises and
the worker's loop retries later, while its processes keep running and its reports wait.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import httpx

from jobfleet import wire
from jobfleet.client.sync import RequestFailed, ServerUnreachable, error_from_response
from jobfleet.protocol import (
    Capacity,
    Checkpoint,
    Finished,
    LogAck,
    LogChunk,
    ReportResult,
    Started,
    Sync,
)

RETRY_STATUS = frozenset({502, 503, 504})
WAIT_SECONDS = 20.0  # how long one long poll for new work may be held open by the server


class HttpLink:
    def __init__(
        self,
        server: str,
        token: str,
        *,
        timeout: float = 10.0,
        attempts: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.attempts = attempts
        self.lease_timeout: float | None = None  # the server's, learnt at registration
        self._http = httpx.Client(
            base_url=self.server,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )
        # The long poll (`wait_for_work`) has a client of its own: it runs in its own thread
        # and holds its request open for many seconds.
        self._waiter = httpx.Client(
            base_url=self.server,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout + WAIT_SECONDS,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()
        self._waiter.close()

    def wait_for_work(self, worker: str, seen: str | None) -> str:
        """Long poll: returns when a lease or kill order may be there for this worker (or
        after WAIT_SECONDS); the answer is the `seen` to send next time."""
        response = self._waiter.post(
            f"{_path(worker)}/wait", json={"seen": seen, "timeout": WAIT_SECONDS}
        )
        if response.is_error:
            raise error_from_response(response)
        return str(response.json()["seen"])

    def register_worker(
        self,
        name: str,
        shard: str,
        capacity: Capacity,
        *,
        labels: dict[str, str] | None = None,
        info: dict[str, Any] | None = None,
        identity: str | None = None,
    ) -> str:
        body = {
            "name": name,
            "identity": identity,
            "shard": shard,
            "capacity": wire.capacity_json(capacity),
            "labels": labels or {},
            "info": info or {},
        }
        answer = self._call("/v1/workers", body)
        self.lease_timeout = float(answer["lease_timeout"])
        return str(answer["incarnation"])

    def sync(
        self,
        worker: str,
        *,
        incarnation: str | None = None,
        held: Iterable[str] = (),
        exclude: Iterable[str] = (),
        renew: bool = False,
        lease_timeout: float = 30.0,
    ) -> Sync:
        body = {
            "incarnation": incarnation,
            "held": sorted(held),
            "exclude": sorted(exclude),
            "renew": renew,
        }
        return wire.sync_from(self._call(f"{_path(worker)}/sync", body))

    def report(
        self,
        worker: str,
        started: list[Started],
        finished: list[Finished],
        checkpoints: list[Checkpoint] | None = None,
    ) -> ReportResult:
        body = {
            "started": [wire.started_json(s) for s in started],
            "finished": [wire.finished_json(f) for f in finished],
            "checkpoints": [wire.checkpoint_json(c) for c in checkpoints or []],
        }
        return wire.report_from(self._call(f"{_path(worker)}/report", body))

    def ship_logs(self, worker: str, chunks: list[LogChunk]) -> LogAck:
        """New bytes of runs' logs (worker/shipper.py); the answer says what the server holds."""
        body = {"chunks": [wire.log_chunk_json(c) for c in chunks]}
        return wire.log_ack_from(self._call(f"{_path(worker)}/logs", body))

    def set_worker_state(self, worker: str, state: str, *, incarnation: str | None = None) -> None:
        self._call(f"{_path(worker)}/state", {"state": state, "incarnation": incarnation})

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST with retries on transport errors and 502/503/504; other errors raise at once."""
        for attempt in range(self.attempts):
            last = attempt == self.attempts - 1
            try:
                response = self._http.post(path, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if last:
                    raise ServerUnreachable(self.server) from exc
            except httpx.TransportError as exc:
                if last:
                    raise RequestFailed(f"{path}: {exc!r}") from exc
            else:
                if response.status_code not in RETRY_STATUS or last:
                    if response.is_error:
                        raise error_from_response(response)
                    answer: dict[str, Any] = response.json()
                    return answer
            time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")


def _path(worker: str) -> str:
    return f"/v1/workers/{quote(worker, safe='')}"
