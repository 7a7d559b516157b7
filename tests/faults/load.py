"""Load for the fault tests: a client that submits batches of short jobs through the HTTP API,
fails over between servers, and keeps the ids the API acknowledged (201).

Every job carries a `client_id`, so a batch sent again after a failure (the server died before
answering, the answer was lost) is stored once: the API returns the jobs it already has.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.helpers import wait_for

ACTIVE_STATES = ("WAITING", "QUEUED", "SCHEDULED", "LEASED", "RUNNING")
# Short jobs, small enough that a worker of a few CPUs runs many at once.
RESOURCES = {"cpu": 0.1, "memory": "16Mi"}


@dataclass
class FailoverClient:
    """Talks to the first server that answers; on a connection failure or a 5xx, the next."""

    urls: Sequence[str]
    token: str
    current: int = 0
    failovers: int = 0
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._http = httpx.Client(
            headers={"Authorization": f"Bearer {self.token}"}, timeout=httpx.Timeout(10.0)
        )

    def close(self) -> None:
        self._http.close()

    def request(
        self, method: str, path: str, *, timeout: float = 90.0, **kw: Any
    ) -> httpx.Response:
        """The first answer that is neither a transport error nor a 5xx, trying the next
        server after each failure, for at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            url = self.urls[self.current % len(self.urls)]
            try:
                response = self._http.request(method, url + path, **kw)
            except httpx.TransportError as exc:
                self.errors.append(f"{url}: {exc!r}")
            else:
                if response.status_code < 500:
                    return response
                self.errors.append(f"{url}: HTTP {response.status_code} {response.text[:200]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no server answered in time; last: {self.errors[-3:]}")
            if len(self.urls) > 1:
                self.current += 1
                self.failovers += 1
            time.sleep(0.1)


class Load:
    """Submits `total` jobs of `job_set` in batches from a thread, one batch at a time;
    `acked` holds the ids of the batches the API answered 201 for."""

    def __init__(
        self,
        urls: Sequence[str],
        token: str,
        job_set: str,
        total: int,
        *,
        command: Sequence[str] = ("true",),
        batch: int = 10,
        pause: float = 0.02,
    ) -> None:
        self.client = FailoverClient(list(urls), token)
        self.job_set = job_set
        self.total = total
        self.command = list(command)
        self.batch = batch
        self.pause = pause
        self.acked: list[str] = []
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"load-{job_set}", daemon=True)

    def spec(self, n: int) -> dict[str, Any]:
        return {
            "command": self.command,
            "job_set": self.job_set,
            "client_id": f"{self.job_set}-{n}",
            "resources": RESOURCES,
        }

    def start(self) -> Load:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for first in range(0, self.total, self.batch):
                specs = [self.spec(n) for n in range(first, min(self.total, first + self.batch))]
                response = self.client.request("POST", "/v1/jobs", json={"jobs": specs})
                assert response.status_code == 201, response.text
                self.acked += [job["id"] for job in response.json()["jobs"]]
                time.sleep(self.pause)
        except BaseException as exc:
            self.failure = exc

    def wait_acked(self, n: int, timeout: float = 60) -> None:
        """Until at least `n` jobs are acknowledged."""
        wait_for(
            lambda: len(self.acked) >= n or self.failure is not None,
            timeout=timeout,
            interval=0.02,
            what=f"{n} acknowledged submissions",
        )
        assert self.failure is None, self.failure

    def join(self, timeout: float = 120) -> list[str]:
        """Wait for the last batch; the acknowledged ids."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"submissions still running after {timeout}s"
        assert self.failure is None, self.failure
        assert len(self.acked) == len(set(self.acked)) == self.total, (
            f"{len(self.acked)} ids for {self.total} jobs ({len(set(self.acked))} distinct)"
        )
        return list(self.acked)

    def wait_all_ended(self, timeout: float = 90) -> None:
        """Until no job of the job set is WAITING, QUEUED, SCHEDULED, LEASED or RUNNING."""
        params = {"job_set": self.job_set, "state": list(ACTIVE_STATES), "limit": "1"}

        def none_active() -> bool:
            response = self.client.request("GET", "/v1/jobs", params=params, timeout=30)
            return response.status_code == 200 and not response.json()["items"]

        wait_for(none_active, timeout=timeout, interval=0.25, what=f"every job of {self.job_set}")

    def running(self) -> bool:
        """Whether a job of the job set is RUNNING now (a fault then hits a run in flight)."""
        params = {"job_set": self.job_set, "state": "RUNNING", "limit": "1"}
        response = self.client.request("GET", "/v1/jobs", params=params, timeout=30)
        return response.status_code == 200 and bool(response.json()["items"])

    def states(self) -> dict[str, int]:
        """How many jobs of the job set are in each state (through the API)."""
        counts: dict[str, int] = {}
        cursor: str | None = None
        while True:
            params = {"job_set": self.job_set, "limit": "1000"}
            if cursor:
                params["cursor"] = cursor
            page = self.client.request("GET", "/v1/jobs", params=params, timeout=30).json()
            for job in page["items"]:
                counts[job["state"]] = counts.get(job["state"], 0) + 1
            cursor = page.get("next_cursor")
            if not cursor:
                return counts

    def close(self) -> None:
        self.client.close()
