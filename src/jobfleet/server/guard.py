"""The edge: every request is bounded and typed before a route sees it (a plain ASGI middleware).

- the body: at most `limit` bytes (413), counted as it arrives (a chunked body has no
  Content-Length to trust);
- a JSON body: decoded under `jobfleet.inputs` (finite numbers, int64 integers, no NUL or lone
  surrogate in any string or key, a nesting depth) — 422 naming the place, before any route
  or model sees it; a form body and the query string: no NUL byte (422 naming the field); the
  path: no NUL byte.

The routes' models then check their fields' own bounds; nothing is stored for a refused
request. The body read here is handed on unchanged to the route.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobfleet.errors import InvalidInput
from jobfleet.inputs import CHECKED, loads, text_problem
from jobfleet.server import problems

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class TooLarge(Exception):
    pass


class InputGuard:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self._check_url(scope)
            declared = self._declared_length(scope)
            if declared is not None and declared > self.limit:
                raise TooLarge(declared)
            if scope["method"] in BODY_METHODS:
                body = await self._read(receive)
                self._check_body(scope, body)
                receive = _replay(body, receive)
        except TooLarge as exc:
            size = f"{exc.args[0]} bytes" if exc.args else "over the limit"
            await problems.problem(
                413,
                "Request too large",
                f"the body is {size}; the limit is {self.limit}: send smaller batches",
            )(scope, receive, send)
            return
        except InvalidInput as exc:
            await problems.problem(exc.status, exc.title, exc.detail, **exc.extra)(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _declared_length(scope: Scope) -> int | None:
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit():
                return int(value)
        return None

    async def _read(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise TooLarge()
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @staticmethod
    def _check_url(scope: Scope) -> None:
        if "\x00" in scope["path"]:
            raise InvalidInput(
                "the path cannot contain a NUL byte", [{"loc": ["path"], "msg": "NUL byte"}]
            )
        query = scope.get("query_string", b"").decode("latin-1")
        if query:
            _check_fields("query", parse_qsl(query, keep_blank_values=True, errors="replace"))

    @staticmethod
    def _check_body(scope: Scope, body: bytes) -> None:
        if not body:
            return
        kind = _content_type(scope)
        if kind == "application/json" or kind.endswith("+json"):
            loads(body)
            scope[CHECKED] = True  # a route that decodes the body itself need not check again
        elif kind == "application/x-www-form-urlencoded":
            form = body.decode("latin-1")
            _check_fields("body", parse_qsl(form, keep_blank_values=True, errors="replace"))


def _content_type(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"content-type":
            text: str = bytes(value).decode("latin-1")
            return text.split(";")[0].strip().lower()
    return ""


def _check_fields(where: str, pairs: list[tuple[str, str]]) -> None:
    errors: list[dict[str, Any]] = []
    for key, value in pairs:
        why = text_problem(key) or text_problem(value)
        if why is not None:
            errors.append({"loc": [where, key.replace("\x00", "\ufffd")], "msg": why})
    if errors:
        first = ".".join(errors[0]["loc"])
        raise InvalidInput(f"{first}: {errors[0]['msg']}", errors[:50])


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body once, then whatever the client sends next (its disconnect)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
