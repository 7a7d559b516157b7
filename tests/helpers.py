"""Test helpers: a real HTTP server in a thread, and bounded waiting on a condition."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import uvicorn

from tests.conformance import Conformance

T = TypeVar("T")


def wait_for(
    check: Callable[[], T | None], *, timeout: float = 15.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}; last={last!r}")


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve `app` over real HTTP on a free loopback port; yields the base URL.

    Every response of an app with an OpenAPI document is checked against it (the test fails
    at the end, listing the responses that do not match: tests/conformance.py)."""
    checked = Conformance(app) if hasattr(app, "openapi") else None
    with _serve(checked or app) as url:
        yield url
    if checked is not None and checked.mismatches:
        listed = "\n  ".join(dict.fromkeys(checked.mismatches))
        raise AssertionError(f"responses that do not match the OpenAPI document:\n  {listed}")


@contextmanager
def _serve(app: Any) -> Iterator[str]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10, what="uvicorn to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
