"""Dashboard parts of PRODUCT.md §14 (SQLite and PostgreSQL): usage on the overview, the
schedules page with pause and resume, an array's page."""

from __future__ import annotations

from tests.integration.conftest import Api
from tests.integration.test_web import signed_in


def test_overview_shows_usage_per_queue_of_the_last_day(api: Api) -> None:
    job = api.submit(command=["true"])
    api.wait_state(str(job["id"]), "SUCCEEDED")
    with signed_in(api) as c:
        page = c.get("/ui/").text
    assert 'id="usage"' in page
    usage = page[page.index('id="usage"') :]
    assert '<th scope="row">default</th>' in usage[: usage.index("</table>")]


def test_schedules_page_pauses_and_resumes(api: Api) -> None:
    body = {"name": "tidy", "every": "1h", "job": {"command": ["true"]}}
    assert api.http.post("/v1/schedules", json=body).status_code == 201
    with signed_in(api) as c:
        page = c.get("/ui/schedules").text
        assert "tidy" in page and "Pause" in page
        r = c.post("/ui/schedules/tidy/pause")
        assert r.status_code == 303
        assert api.http.get("/v1/schedules/tidy").json()["paused"] is True
        assert "Resume" in c.get("/ui/schedules").text
        c.post("/ui/schedules/tidy/resume")
        assert api.http.get("/v1/schedules/tidy").json()["paused"] is False


def test_an_array_has_a_page_with_counts_and_the_jobs_table_links_it(api: Api) -> None:
    spec = {"command": ["true"], "array": {"size": 3}, "not_before": "1h"}
    array_id = api.http.post("/v1/jobs", json=spec).json()["array_id"]
    with signed_in(api) as c:
        page = c.get(f"/ui/arrays/{array_id}").text
        assert "QUEUED" in page and "<strong>3</strong>" in page
        table = c.get("/ui/jobs").text
        assert c.get("/ui/arrays/NOPE").status_code == 404
    # One row for the array, opening into its page, with its size and counts by state.
    assert table.count(f'data-array-id="{array_id}"') == 1
    assert f'href="/ui/arrays/{array_id}"' in table and "array of 3" in table
    assert "3 QUEUED" in table
    assert 'data-job-id="' not in table  # none of its jobs has a row of its own
