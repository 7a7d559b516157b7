"""The conformance check of the tests (tests/conformance.py) catches what it must: a body that
does not match its schema, a status or a media type the document does not list, a bad event."""

from __future__ import annotations

import json
from typing import Any

from tests.conformance import Document

PROBLEM = {"$ref": "#/components/schemas/Problem"}
DOC: dict[str, Any] = {
    "paths": {
        "/v1/things/{id}": {
            "get": {
                "responses": {
                    "200": {
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/T"}}
                        }
                    },
                    "404": {"content": {"application/problem+json": {"schema": PROBLEM}}},
                }
            }
        },
        "/v1/things/special": {"get": {"responses": {"204": {"description": "none"}}}},
        "/v1/stream": {
            "get": {"responses": {"200": {"content": {"text/event-stream": {"schema": {}}}}}}
        },
    },
    "components": {
        "schemas": {
            "T": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "n": {"type": "integer"}},
                "required": ["id", "n"],
            },
            "Problem": {"type": "object", "required": ["status"]},
            "Event": {"type": "object", "required": ["id", "type"]},
        }
    },
}


def check(path: str, status: int, media_type: str, body: Any, method: str = "GET") -> str | None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Document(DOC).check(method, path, status, media_type, raw)


def test_a_response_as_documented_passes() -> None:
    assert check("/v1/things/a", 200, "application/json", {"id": "a", "n": 1}) is None
    assert check("/v1/things/a", 404, "application/problem+json", {"status": 404}) is None
    assert check("/v1/things/special", 204, "", b"") is None  # a literal path wins
    assert check("/ui/anything", 200, "text/html", b"<p>") is None  # not the API's


def test_a_body_off_its_schema_is_named_with_where() -> None:
    found = check("/v1/things/a", 200, "application/json", {"id": "a", "n": "1"})
    assert found == "GET /v1/things/{id} → 200: at /n: '1' is not of type 'integer'"
    assert "'n' is a required property" in str(
        check("/v1/things/a", 200, "application/json", {"id": "a"})
    )


def test_an_undocumented_status_media_type_or_route_is_a_mismatch() -> None:
    assert "status 409 is not documented" in str(
        check("/v1/things/a", 409, "application/problem+json", {"status": 409})
    )
    assert "sent application/json" in str(check("/v1/things/a", 404, "application/json", {}))
    assert "not in the document" in str(check("/v1/other", 200, "application/json", {}))
    assert "a body is sent" in str(check("/v1/things/special", 204, "", b"x"))


def test_each_event_of_a_stream_is_checked() -> None:
    good = b': connected\n\nid: 1\nevent: queued\ndata: {"id": 1, "type": "queued"}\n\n'
    assert check("/v1/stream", 200, "text/event-stream", good) is None
    bad = good + b'id: 2\nevent: queued\ndata: {"id": 2}\n\n: ping\n\n'
    assert "'type' is a required property" in str(
        check("/v1/stream", 200, "text/event-stream", bad)
    )
