"""The OpenAPI document describes the API as it is (PRODUCT.md §14.6), checked by the tools made
for it: openapi-spec-validator here, and jsonschema on every response the API tests see
(tests/conformance.py, wired into tests/helpers.py `serve`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from jobfleet.config import Settings
from jobfleet.runfiles import RunFiles
from jobfleet.server.app import create_app
from jobfleet.store import Store
from tests.integration.conftest import Api

PROBLEM = "application/problem+json"


@pytest.fixture
def doc(store: Store, tmp_path: Path) -> dict[str, Any]:
    schema: dict[str, Any] = create_app(store, Settings(), RunFiles(tmp_path)).openapi()
    return schema


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, item in doc["paths"].items() for m, op in item.items()]


def test_the_document_is_valid_openapi(doc: dict[str, Any]) -> None:
    validate(doc)  # raises on any error
    assert doc["openapi"].startswith("3.1")


def test_the_objects_the_api_answers_are_components(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    for name in ("Job", "Run", "Failure", "Event", "JobPage", "Worker", "Queue", "Problem"):
        assert schemas[name]["type"] == "object", name
    job = schemas["Job"]
    assert {"id", "state", "runs", "failure", "actions"} <= set(job["required"])
    assert schemas["JobPage"]["properties"]["items"]["items"] == {"$ref": ref("Job")}
    assert {"type", "title", "status", "detail"} <= set(schemas["Problem"]["required"])
    assert "HTTPValidationError" not in schemas  # errors are Problems, not FastAPI's shape


def ref(name: str) -> str:
    return f"#/components/schemas/{name}"


def test_every_success_says_what_it_answers(doc: dict[str, Any]) -> None:
    for method, path, op in operations(doc):
        ok = [(s, r) for s, r in op["responses"].items() if s.startswith("2")]
        assert len(ok) == 1, (method, path, list(op["responses"]))
        status, answer = ok[0]
        if status == "204":
            assert "content" not in answer, (method, path)
            continue
        for media_type, body in answer["content"].items():
            schema = body["schema"]
            if media_type == "application/json":
                assert "$ref" in schema or "anyOf" in schema, (method, path, schema)
            else:
                assert media_type in ("text/plain", "text/event-stream"), (method, path)


def test_errors_are_problems_and_the_bearer_scheme_is_declared(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["bearerAuth"]["description"],
    }
    assert schemes["sessionCookie"]["in"] == "cookie"
    for method, path, op in operations(doc):
        errors = {s: r for s, r in op["responses"].items() if s[0] in "45"}
        for status, answer in errors.items():
            assert list(answer["content"]) == [PROBLEM], (method, path, status)
            assert answer["content"][PROBLEM]["schema"] == {"$ref": ref("Problem")}
        if path.startswith("/v1/"):
            assert {"bearerAuth": []} in op["security"], (method, path)
            assert "401" in errors, (method, path)
        if "{" in path:
            assert "404" in errors, (method, path)
        if "requestBody" in op:
            assert {"413", "422"} <= set(errors), (method, path)
    events = doc["paths"]["/v1/events"]["get"]
    assert events["security"] == [{"bearerAuth": []}, {"sessionCookie": []}]
    assert "403" not in doc["paths"]["/v1/auth/whoami"]["get"]["responses"]
    for method, path in (("post", "/v1/jobs/{job_id}/cancel"), ("delete", "/v1/queues/{name}")):
        assert "409" in doc["paths"][path][method]["responses"]


def test_operation_ids_read_as_names(doc: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))
    for op_id in ids:
        assert re.fullmatch(r"[a-z]+(?:[A-Z][a-z]+)*", op_id), op_id
    by_route = {(m, p): op["operationId"] for m, p, op in operations(doc)}
    assert by_route["post", "/v1/jobs"] == "submitJobs"
    assert by_route["get", "/v1/jobs"] == "listJobs"
    assert by_route["get", "/v1/jobs/{job_id}"] == "getJob"
    assert by_route["get", "/v1/events"] == "streamEvents"
    assert by_route["get", "/v1/workers"] == "listWorkers"


def test_each_secured_operation_answers_401_without_a_token(api: Api) -> None:
    """What the document says of every route, tried on the server (and the 401s are checked
    against the document by the conformance hook, like every response here)."""
    doc = api.http.get("/openapi.json").json()
    tried = 0
    with httpx.Client(base_url=api.url, timeout=30) as anon:
        for method, path, op in operations(doc):
            if not any("bearerAuth" in s for s in op.get("security", [])):
                continue
            if op.get("security", [{}])[0] == {}:
                continue  # /metrics: a token only when configured so
            url = re.sub(r"\{[^}]+\}", "x", path)
            body = {"json": {}} if "requestBody" in op else {}
            r = anon.request(method.upper(), url, **body)  # type: ignore[arg-type]
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.headers["content-type"] == PROBLEM
            assert r.headers["www-authenticate"] == "Bearer"
            tried += 1
    assert tried >= 30


def test_docs_is_served_from_jobfleet_itself(api: Api) -> None:
    """/docs needs no internet: every script, stylesheet and icon it loads is same-origin and
    served, and the vendored Swagger UI carries its licence."""
    with httpx.Client(base_url=api.url, timeout=30) as anon:
        page = anon.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert len(assets) == 3, assets
        for url in assets:
            assert url.startswith("/ui/static/vendor/swagger-ui-"), url
            r = anon.get(url)
            assert r.status_code == 200 and len(r.content) > 100, url
        assert "url: '/openapi.json'" in page.text
        assert re.search(r"https?://", page.text) is None
        assert anon.get("/redoc").status_code == 404  # FastAPI's default loads from a CDN
        folder = assets[0].rsplit("/", 1)[0]
        assert "Apache License" in anon.get(f"{folder}/LICENSE").text
        assert anon.get("/openapi.json").status_code == 200


def test_the_main_objects_list_every_field_the_server_sends(api: Api) -> None:
    """The schemas allow more fields (clients ignore what they do not know), so this pins that
    they leave none out: a field added to a job, run, failure, worker or queue must be
    described in server/schemas.py too."""
    schemas = api.http.get("/openapi.json").json()["components"]["schemas"]

    def fields(name: str) -> set[str]:
        return set(schemas[name]["properties"])

    job = api.submit(command=["sh", "-c", "exit 3"])
    failed = api.wait_state(str(job["id"]), "FAILED")
    assert set(failed) == fields("Job")
    assert set(failed["runs"][0]) == fields("Run")  # type: ignore[index]
    assert set(failed["failure"]) == fields("Failure")  # type: ignore[arg-type]
    assert set(api.http.get("/v1/workers").json()["items"][0]) == fields("Worker")
    assert set(api.http.get("/v1/queues/default").json()) == fields("Queue")
    page = api.http.get("/v1/jobs", params={"limit": 1}).json()
    assert set(page) == fields("JobPage")
    event = api.http.get(f"/v1/jobs/{job['id']}/events").json()["items"][0]
    assert fields("Event") <= set(event)  # besides these, each type's own fields
