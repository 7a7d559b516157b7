"""Every response the API tests see is checked against the OpenAPI document the server publishes.

`serve()` (tests/helpers.py) wraps the app under test in `Conformance`, an ASGI middleware that
looks each response up in the document (path template, method, status, media type) and
validates its JSON body with jsonschema (OpenAPI 3.1 schemas are JSON Schema 2020-12). The
event stream is checked message by message: each event's data against `Event`. A response
the document does not describe, or describes otherwise, is recorded, and `serve()` fails the
test at its end, listing them. So a route that changes what it sends without its schema (or
the other way round) fails the suite's own API tests.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 64 * 2**20  # larger bodies (none in the tests) are not checked
_DOCS: dict[str, Document] = {}


@dataclass
class Document:
    doc: dict[str, Any]
    routes: list[tuple[re.Pattern[str], str, dict[str, Any]]] = field(default_factory=list)
    validators: dict[str, Draft202012Validator] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for path, item in self.doc["paths"].items():
            pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
            self.routes.append((pattern, path, item))
        # literal paths before templates: /v1/jobs/x before /v1/jobs/{job_id}
        self.routes.sort(key=lambda r: r[1].count("{"))

    def validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        key = json.dumps(schema, sort_keys=True)
        if key not in self.validators:
            root = {**schema, "components": self.doc["components"]}
            self.validators[key] = Draft202012Validator(root)
        return self.validators[key]

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        for pattern, template, item in self.routes:
            if pattern.match(path) and method.lower() in item:
                return template, item[method.lower()]
        return None

    def check(
        self, method: str, path: str, status: int, media_type: str, body: bytes
    ) -> str | None:
        """None if the response matches the document, else what is wrong."""
        found = self.operation(method, path)
        if found is None:
            undocumented = path.startswith("/v1/") and status not in (404, 405)
            return f"{method} {path}: not in the document" if undocumented else None
        template, operation = found
        where = f"{method} {template} → {status}"
        answer = operation["responses"].get(str(status)) or operation["responses"].get("default")
        if answer is None:
            return f"{where}: status {status} is not documented"
        content = answer.get("content")
        if not content:
            return f"{where}: a body is sent, none is documented" if body else None
        if media_type not in content:
            return f"{where}: sent {media_type}, documented {sorted(content)}"
        if media_type == "text/event-stream":
            return self._check_stream(where, body)
        schema = content[media_type].get("schema")
        if not schema or not media_type.endswith("json"):
            return None
        return self._check_json(where, schema, body)

    def _check_json(self, where: str, schema: dict[str, Any], body: bytes) -> str | None:
        try:
            instance = json.loads(body)
        except ValueError:
            return f"{where}: not JSON: {body[:200]!r}"
        error = best_match(self.validator(schema).iter_errors(instance))
        if error is None:
            return None
        at = "/".join(str(p) for p in error.absolute_path)
        return f"{where}: at /{at}: {error.message[:300]}"

    def _check_stream(self, where: str, body: bytes) -> str | None:
        """Each lifecycle event's data against `Event` (log lines have no schema)."""
        event = {"$ref": "#/components/schemas/Event"}
        for block in body.decode(errors="replace").split("\n\n"):
            lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            if "id" in lines and "data" in lines:
                problem = self._check_json(where, event, lines["data"].encode())
                if problem:
                    return problem
        return None


class Conformance:
    """ASGI middleware: records every response that does not match the document."""

    def __init__(self, app: Any) -> None:
        self.app: ASGIApp = app
        self.openapi = app.openapi
        self.mismatches: list[str] = []
        self._document: Document | None = None

    def document(self) -> Document:
        if self._document is None:
            doc = self.openapi()
            key = json.dumps(doc, sort_keys=True)
            if key not in _DOCS:
                _DOCS.clear()
                _DOCS[key] = Document(doc)
            self._document = _DOCS[key]
        return self._document

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        seen: dict[str, Any] = {"status": 0, "type": "", "body": bytearray()}

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                headers = dict(message.get("headers", []))
                seen["type"] = headers.get(b"content-type", b"").decode().split(";")[0].strip()
            elif message["type"] == "http.response.body" and len(seen["body"]) < MAX_BODY:
                seen["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            if seen["status"]:
                problem = self.document().check(
                    scope["method"], scope["path"], seen["status"], seen["type"], seen["body"]
                )
                if problem:
                    self.mismatches.append(problem)
