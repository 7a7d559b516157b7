"""Scheduling with a real `jobfleet up`: weighted fair share, preemption by priority class,
and the `jobfleet queue` commands (PRODUCT.md §7)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from jobfleet.client import Client
from tests.e2e.conftest import BACKENDS, Fleet, finish, new_fleet
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

CONFIG = """\
worker: {cpu: 8, memory: 16Gi, grace: 1s}
priority_classes:
  - {name: default, priority: 0, preemptible: true}
  - {name: urgent, priority: 100, preemptible: false}
queues:
  - {name: a, weight: 1}
  - {name: b, weight: 3}
"""


@pytest.fixture(scope="module", params=BACKENDS)
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp(f"sched-{request.param}")
    config = root / "jobfleet.yaml"
    config.write_text(CONFIG)
    f = new_fleet(root / "fleet", request.param, request, config=config)
    try:
        yield f.start()
    finally:
        finish(f)


def sleeper(queue: str, job_set: str, **kw: Any) -> dict[str, Any]:
    return {
        "command": ["sleep", "60"],
        "queue": queue,
        "job_set": job_set,
        "resources": {"cpu": 1},
        **kw,
    }


def running(c: Client, job_set: str) -> list[dict[str, Any]]:
    return [j for j in c.iter_jobs(job_set=job_set) if j["state"] == "RUNNING"]


def cleanup(c: Client, *sets: tuple[str, str]) -> None:
    for queue, job_set in sets:
        c.cancel_job_set(queue, job_set)
    wait_for(
        lambda: all(
            j["state"] in ("CANCELLED", "SUCCEEDED", "FAILED", "PREEMPTED")
            for q, s in sets
            for j in c.iter_jobs(job_set=s)
        ),
        timeout=30,
        what="the test's jobs to end",
    )


def test_two_queues_with_weights_1_and_3_share_the_worker_1_to_3(fleet: Fleet) -> None:
    with fleet.client() as c:
        try:
            c.submit_many(
                [sleeper("a", "fs") for _ in range(10)] + [sleeper("b", "fs") for _ in range(10)]
            )
            jobs = wait_for(
                lambda: len(r := running(c, "fs")) == 8 and r, timeout=30, what="8 jobs running"
            )
            assert Counter(j["queue"] for j in jobs) == {"a": 2, "b": 6}
            waiting = [j for j in c.iter_jobs(job_set="fs") if j["state"] == "SCHEDULED"]
            assert waiting and all(j["scheduling_reason"] for j in waiting)
        finally:
            cleanup(c, ("a", "fs"), ("b", "fs"))


def test_an_urgent_job_preempts_low_jobs_each_with_exactly_one_event(fleet: Fleet) -> None:
    with fleet.client() as c:
        try:
            low = c.submit_many([sleeper("a", "low") for _ in range(8)])
            wait_for(lambda: len(running(c, "low")) == 8, timeout=30, what="8 low jobs running")
            urgent = c.submit(
                {
                    "command": ["true"],
                    "job_set": "urgent",
                    "priority_class": "urgent",
                    "resources": {"cpu": 2},
                }
            )
            done = fleet.wait_state(urgent["id"], "SUCCEEDED", timeout=40)
            assert done["runs"][0]["worker"]
            preemptions = {}
            for j in low:
                evs = c.job_events(j["id"])
                preemptions[j["id"]] = [
                    e
                    for e in evs
                    if e["type"] == "preempted"
                    or (e["type"] == "requeued" and e.get("cause") == "preempted")
                ]
            victims = {k: v for k, v in preemptions.items() if v}
            assert len(victims) == 2, preemptions  # the fewest that make room for 2 CPUs
            assert all(len(v) == 1 and v[0]["type"] == "requeued" for v in victims.values())
            assert all(v[0]["failure"]["condition"] == "PREEMPTED" for v in victims.values())
        finally:
            cleanup(c, ("a", "low"))


def test_queue_commands(fleet: Fleet) -> None:
    made = fleet.cli(
        "queue", "create", "cliq", "--weight", "2", "--max-running-jobs", "3", "-o", "json"
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["max_running_jobs"] == 3
    changed = fleet.cli("queue", "update", "cliq", "--max-gpu", "1", "-o", "json")
    assert json.loads(changed.stdout)["max_resources"] == {"gpu": 1}
    table = fleet.cli("queue", "list")
    assert "cliq" in table.stdout and "WEIGHT" in table.stdout
    bad = fleet.cli("queue", "create", "cliq")
    assert bad.returncode != 0 and "exists already" in bad.stderr
    gone = fleet.cli("queue", "delete", "cliq")
    assert gone.returncode == 0, gone.stderr
    missing = fleet.cli("queue", "get", "cliq")
    assert missing.returncode != 0
