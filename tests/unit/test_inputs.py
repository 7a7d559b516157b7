"""The edge's rules (jobfleet.inputs) and the guard that applies them to every request."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from jobfleet.errors import InvalidInput
from jobfleet.failures import FailureInfo
from jobfleet.inputs import INT64_MAX, MAX_DEPTH, clean, loads, problems
from jobfleet.models import JobSpec
from jobfleet.server.guard import InputGuard


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        ('{"a": NaN}', ["body", "a"]),
        ('{"a": [1, Infinity]}', ["body", "a", 1]),
        ('{"a": -Infinity}', ["body", "a"]),
        ('{"a": 1e400}', ["body", "a"]),
        (f'{{"a": {INT64_MAX + 1}}}', ["body", "a"]),
        ('{"a": {"b": "x\\u0000"}}', ["body", "a", "b"]),
        ('{"a": "\\ud800"}', ["body", "a"]),
        ('{"a": "\\udfff"}', ["body", "a"]),
        ("[" * 5000 + "]" * 5000, ["body"]),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), ["body", *[0] * MAX_DEPTH]),
        ('{"a": 1' + "0" * 5000 + "}", ["body"]),  # past Python's digit limit: invalid JSON
    ],
)
def test_loads_refuses_naming_the_place(raw: str, loc: list[Any]) -> None:
    with pytest.raises(InvalidInput) as caught:
        loads(raw)
    assert caught.value.status == 422
    assert loc in [e["loc"] for e in caught.value.extra["errors"]]


def test_loads_takes_what_is_within_bounds() -> None:
    body = {"a": [1, -(2**63), INT64_MAX, 1.5, "é ✓ 😀", True, None], "b": {"c": {}}}
    assert loads(json.dumps(body)) == body
    assert loads("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)) is not None


def test_a_nul_in_a_key_is_named_too() -> None:
    assert problems({"k\x00": 1}) == [
        (["k\ufffd"], "key: text cannot contain a NUL byte (\\u0000)")
    ]


def test_clean_replaces_what_cannot_be_stored() -> None:
    assert clean("a\x00b\udcffc") == "a\ufffdb\ufffdc"
    info = FailureInfo(condition="START_ERROR", message="a\x00", termination_message="\ud800")
    assert (info.message, info.termination_message) == ("a\ufffd", "\ufffd")


def test_models_hold_the_same_rules_without_the_edge() -> None:
    for spec in (
        {"command": ["a\x00"]},
        {"command": ["true"], "env": {"K": "\udc80"}},
        {"command": ["true"], "priority": 10**30},
        {"command": ["true"], "resources": {"memory": float("inf")}},
        {"command": ["true"], "resources": {"memory": "9" * 400 + "Gi"}},
        {"command": ["true"], "timeout": float("nan")},
    ):
        with pytest.raises(ValidationError):
            JobSpec.model_validate(spec)


# -- the guard, around a tiny app ----------------------------------------------------------------


async def _echo(request: Request) -> JSONResponse:
    return JSONResponse({"got": len(await request.body())})


def _client(limit: int) -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/x", _echo, methods=["GET", "POST"])])
    transport = httpx.ASGITransport(app=InputGuard(app, limit=limit))
    return httpx.AsyncClient(transport=transport, base_url="http://t")


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_the_body_limit_counts_a_streamed_body() -> None:
    async def chunks(n: int) -> AsyncIterator[bytes]:
        for _ in range(n):
            yield b"x" * 100

    async def go() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with _client(1000) as c:
            small = await c.post("/x", content=chunks(5))  # no Content-Length: chunked
            big = await c.post("/x", content=chunks(20))
            declared = await c.post("/x", content=b"x" * 1001)
            return small, big, declared

    small, big, declared = _run(go())
    assert small.json() == {"got": 500}  # the body read by the guard reaches the route whole
    for r in (big, declared):
        assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"


def test_the_guard_refuses_bad_json_forms_and_queries() -> None:
    async def go() -> list[httpx.Response]:
        async with _client(10_000) as c:
            return [
                await c.post(
                    "/x", content=b'{"a": NaN}', headers={"content-type": "application/json"}
                ),
                await c.post("/x", data={"token": "a\x00"}),
                await c.get("/x", params={"q": "\x00"}),
                await c.post(
                    "/x", content=b'{"a": 1}', headers={"content-type": "application/json"}
                ),
            ]

    bad_json, bad_form, bad_query, good = _run(go())
    assert bad_json.status_code == 422 and bad_json.json()["errors"][0]["loc"] == ["body", "a"]
    assert bad_form.status_code == 422 and bad_form.json()["errors"][0]["loc"] == ["body", "token"]
    assert bad_query.status_code == 422 and bad_query.json()["errors"][0]["loc"] == ["query", "q"]
    assert good.json() == {"got": 8}
