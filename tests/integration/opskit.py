"""Test kit for callbacks, metrics and retention: a real HTTP receiver and an API stack with
chosen settings."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from jobfleet.config import Settings
from jobfleet.protocol import Finished
from jobfleet.runtime import LocalStack
from jobfleet.store import Store
from tests.helpers import serve
from tests.integration.conftest import TOKEN, Api
from tests.integration.storekit import lease_one, register, spec, start

SECRET = "s3cret"


@dataclass
class Received:
    time: float
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A local HTTP receiver: answers each POST with the next scripted status (then 200).

    `hold` (when set) makes every request wait until it is released: a hanging receiver.
    """

    statuses: list[int] = field(default_factory=list)
    got: list[Received] = field(default_factory=list)
    hold: threading.Event | None = None
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        if self.hold is not None:
            self.hold.wait(30)
        with self._lock:
            self.got.append(Received(time.monotonic(), headers, body))
            return self.statuses.pop(0) if self.statuses else 200


@contextmanager
def receiver(**kw: Any) -> Iterator[Receiver]:
    rec = Receiver(**kw)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = rec.answer(dict(self.headers.items()), body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield rec
    finally:
        if rec.hold is not None:
            rec.hold.set()
        server.shutdown()
        server.server_close()


def settings(**kw: Any) -> Settings:
    base: dict[str, Any] = {
        "sse_heartbeat": 0.5,
        "lease_timeout": 5,
        "worker": {"name": "w1", "grace": 2, "run_as": "root"},  # jobs use test files
        "callbacks": {
            "secret": SECRET,
            "backoff": {"initial": 0.3, "multiplier": 2, "jitter": 0},
            "timeout": 5,
        },
    }
    base.update(kw)
    return Settings.model_validate(base)


@contextmanager
def stack_api(store: Store, data_dir: Path, config: Settings) -> Iterator[Api]:
    """Like the `api` fixture, with these settings."""
    store.create_token("admin", admin=True, token=TOKEN)
    stack = LocalStack(config, data_dir, store)
    stack.start()
    try:
        with (
            serve(stack.app) as url,
            httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
            ) as http,
        ):
            yield Api(url, http, store, stack)
    finally:
        stack.stop()


def finish_job(store: Store, **kw: Any) -> str:
    """Submit a job and run it to SUCCEEDED through the store (no worker process)."""
    register(store)
    (job_id,) = store.submit([spec(**kw)])
    a = lease_one(store, job_id)
    start(store, a)
    store.report("w1", [], [Finished(a.run_id, a.fencing, "succeeded", time.time(), 0)])
    return job_id
