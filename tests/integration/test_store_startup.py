"""Processes starting together on one database (two `jobfleet server`s) both come up: their
start-up writes — the default queue and shard, the configured queues, the admin principal and
token — take turns (`StoreBase.exclusive`) instead of one dying on a unique key (found by the
fault suite's two-replica test once writers took no global lock)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from jobfleet.runtime import admin_token
from jobfleet.store import Store
from jobfleet.store.schema import principals, queues, tokens


def test_two_processes_starting_together_both_make_their_defaults(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBFLEET_ADMIN_TOKEN", "jf_the-shared-admin-token")
    for round_ in range(8):
        with store.writer.begin() as conn:
            for table in (tokens, principals, queues):
                conn.execute(table.delete())
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def start(
            n: int,
            barrier: threading.Barrier = barrier,
            errors: list[BaseException] = errors,
            round_: int = round_,
        ) -> None:
            try:
                barrier.wait()
                with store.exclusive():
                    store.ensure_defaults()
                    store.upsert_queue("configured", config={})
                admin_token(store, tmp_path / f"r{round_}-{n}")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        with store.read() as conn:
            names = conn.execute(sa.select(principals.c.name)).scalars().all()
        assert names == ["admin"]
