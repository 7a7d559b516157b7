"""The API under test: a real `LocalStack` (scheduler, worker, app) over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from jobfleet.config import Settings
from jobfleet.runtime import LocalStack
from jobfleet.store import Store
from tests.helpers import serve, wait_for

TOKEN = "test-admin-token"


@dataclass
class Api:
    url: str
    http: httpx.Client
    store: Store
    stack: LocalStack

    def submit(self, **spec: object) -> dict[str, object]:
        r = self.http.post("/v1/jobs", json=spec)
        assert r.status_code == 201, r.text
        body: dict[str, object] = r.json()
        return body

    def job(self, job_id: str) -> dict[str, object]:
        r = self.http.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        body: dict[str, object] = r.json()
        return body

    def wait_state(self, job_id: str, *states: str, timeout: float = 20) -> dict[str, object]:
        return wait_for(
            lambda: (j := self.job(job_id))["state"] in states and j,
            timeout=timeout,
            what=f"job {job_id} to reach {states}",
        )


@pytest.fixture
def api(store: Store, tmp_path: Path) -> Iterator[Api]:
    worker = {"name": "w1", "grace": 2, "run_as": "root"}  # said explicitly: jobs use test files
    settings = Settings(sse_heartbeat=0.5, lease_timeout=5, worker=worker)
    store.create_token("admin", admin=True, token=TOKEN)
    stack = LocalStack(settings, tmp_path / "data", store)
    stack.start()
    with (
        serve(stack.app) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as http,
    ):
        yield Api(url, http, store, stack)
    stack.stop()
