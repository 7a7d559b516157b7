"""Callbacks, metrics, retention and JSON logs through a real `jobfleet up` (SQLite): the
terminal event comes from the worker process, the delivery from the main process."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from jobfleet.callbacks import SIGNATURE_HEADER, verify
from tests.e2e.conftest import finish, new_fleet
from tests.helpers import wait_for
from tests.integration.opskit import receiver

pytestmark = pytest.mark.e2e

CONFIG = """
log_format: json
retention: {interval: 0.2s}
callbacks: {backoff: {initial: 0.2s, jitter: 0}}
queues:
  - {name: preview, ttl_after_finished: 1s, callback_secret: queue-secret}
"""


def test_up_delivers_a_signed_callback_exposes_metrics_and_deletes_a_preview_job(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    config = tmp_path / "jobfleet.yaml"
    config.write_text(CONFIG)
    fleet = new_fleet(tmp_path / "fleet", "sqlite", request, config=config)
    try:
        with receiver(statuses=[503]) as rec:
            fleet.start()
            auth = {"Authorization": f"Bearer {fleet.token}"}
            with httpx.Client(base_url=fleet.url, headers=auth, timeout=10) as http:
                spec = {"command": ["true"], "queue": "preview", "callback_url": rec.url}
                job = http.post("/v1/jobs", json=spec).json()
                wait_for(lambda: len(rec.got) >= 2, timeout=20, what="a retried callback")
                got = rec.got[-1]
                assert verify("queue-secret", got.body, got.headers[SIGNATURE_HEADER])
                assert json.loads(got.body)["job_id"] == job["id"]
                wait_for(
                    lambda: http.get(f"/v1/jobs/{job['id']}").status_code == 404,
                    timeout=20,
                    what="the preview job to be deleted",
                )
                text = httpx.get(f"{fleet.url}/metrics", timeout=10).text  # no token needed
            assert 'jobfleet_jobs_submitted_total{queue="preview"} 1.0' in text
            assert 'jobfleet_callback_attempts_total{outcome="delivered"} 1.0' in text
            assert 'jobfleet_retention_deleted_total{kind="jobs"} 1.0' in text
        assert fleet.stop() == 0
        logs = fleet.output().splitlines()
        records = [json.loads(line) for line in logs]  # every line is a JSON record
        assert any(r["message"] == "retention deleted 1 finished jobs" for r in records), logs
        assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
        assert any("admin token (shown once" in r["message"] for r in records)
    finally:
        finish(fleet)
