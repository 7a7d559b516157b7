"""Job arrays (PRODUCT.md §14.1) over real HTTP, on SQLite and PostgreSQL, with the local
scheduler and worker."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
import sqlalchemy as sa

from jobfleet.store.schema import arrays, jobs
from tests.helpers import wait_for
from tests.integration.conftest import Api


def submit_array(api: Api, size: int, max_parallel: int | None = None, **spec: Any) -> Any:
    array = {"size": size, **({"max_parallel": max_parallel} if max_parallel else {})}
    r = api.http.post("/v1/jobs", json={"command": ["true"], **spec, "array": array})
    assert r.status_code == 201, r.text
    return r.json()


def test_an_array_is_n_jobs_with_their_index_in_the_job_and_the_environment(api: Api) -> None:
    echo = 'echo "$JOBFLEET_ARRAY_ID $JOBFLEET_ARRAY_INDEX $JOBFLEET_ARRAY_SIZE"'
    body = submit_array(api, 3, command=["sh", "-c", echo], job_set="sweep")
    array_id = body["array_id"]
    assert [j["array_index"] for j in body["jobs"]] == [0, 1, 2]
    assert {j["array_id"] for j in body["jobs"]} == {array_id}
    assert {j["job_set"] for j in body["jobs"]} == {"sweep"}
    for i, job in enumerate(body["jobs"]):
        api.wait_state(job["id"], "SUCCEEDED")
        assert api.http.get(f"/v1/jobs/{job['id']}/logs").text.split() == [array_id, str(i), "3"]
        assert "array" not in api.job(job["id"])["spec"]  # each job is one job, not an array
    summary = api.http.get(f"/v1/arrays/{array_id}").json()
    assert summary["size"] == 3
    assert summary["counts"] == {"SUCCEEDED": 3}
    assert summary["jobs_url"] == f"/v1/jobs?array_id={array_id}"
    listed = api.http.get("/v1/jobs", params={"array_id": array_id}).json()["items"]
    assert sorted(j["array_index"] for j in listed) == [0, 1, 2]


def test_max_parallel_holds_the_rest_back_with_a_reason(api: Api) -> None:
    body = submit_array(api, 3, max_parallel=1, command=["sleep", "0.4"])
    ids = [j["id"] for j in body["jobs"]]
    wait_for(
        lambda: any("max_parallel" in (api.job(i)["scheduling_reason"] or "") for i in ids),
        what="a held element to say max_parallel",
    )
    runs = []
    for job_id in ids:
        runs += api.wait_state(job_id, "SUCCEEDED")["runs"]  # type: ignore[operator]
    spans = sorted((r["created_at"], r["finished_at"]) for r in runs)
    for (_, end), (start, _) in pairwise(spans):
        assert start >= end, f"two runs of the array overlapped: {spans}"


@pytest.mark.parametrize(
    ("array", "field"),
    [
        ({"size": 0}, "size"),
        ({"size": 10_001}, "size"),
        ({"size": 3, "max_parallel": 0}, "max_parallel"),
        ({"size": 3, "bogus": 1}, "bogus"),
    ],
)
def test_a_bad_array_is_refused_naming_the_field_and_nothing_is_stored(
    api: Api, array: dict[str, Any], field: str
) -> None:
    r = api.http.post("/v1/jobs", json={"command": ["true"], "array": array})
    assert r.status_code == 422, r.text
    assert any(e["loc"][-1] == field and "array" in e["loc"] for e in r.json()["errors"])
    with api.store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(arrays)).scalar() == 0


def test_an_array_in_an_unknown_queue_leaves_no_array_behind(api: Api) -> None:
    r = api.http.post("/v1/jobs", json={"command": ["true"], "queue": "nope", "array": {"size": 2}})
    assert r.status_code == 422, r.text
    with api.store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(arrays)).scalar() == 0


def test_an_array_inside_a_batch_is_refused(api: Api) -> None:
    spec = {"command": ["true"], "array": {"size": 2}}
    r = api.http.post("/v1/jobs", json={"jobs": [{"command": ["true"]}, spec]})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["jobs", 1, "array"]


def test_cancel_an_array_cancels_its_unfinished_jobs(api: Api) -> None:
    body = submit_array(api, 4, command=["true"], not_before="1h")
    array_id = body["array_id"]
    r = api.http.post(f"/v1/arrays/{array_id}/cancel", json={"reason": "wrong sweep"})
    assert r.status_code == 200, r.text
    assert r.json()["cancelled"] == 4
    assert api.http.get(f"/v1/arrays/{array_id}").json()["counts"] == {"CANCELLED": 4}
    assert api.http.get("/v1/arrays/NOPE").status_code == 404


def test_an_array_held_at_max_parallel_does_not_hide_the_jobs_behind_it(api: Api) -> None:
    # More held elements than the scheduler reads from the head of a lane (200): the job
    # submitted after them must still be placed while the array runs one at a time.
    body = submit_array(api, 250, max_parallel=1, command=["sleep", "30"])
    later = api.submit(command=["true"])
    api.wait_state(str(later["id"]), "SUCCEEDED", timeout=30)
    summary = api.http.get(f"/v1/arrays/{body['array_id']}").json()
    assert summary["counts"].get("SUCCEEDED", 0) == 0  # the array's first job still runs
    api.http.post(f"/v1/arrays/{body['array_id']}/cancel")
