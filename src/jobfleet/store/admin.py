"""Queues and shards. (Principals and tokens: store/principals.py.)"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from jobfleet.access import Principal
from jobfleet.store.base import StoreBase
from jobfleet.store.schema import counters, queues, shards

__all__ = ["AdminOps", "Principal"]  # Principal: re-exported for older imports


class AdminOps(StoreBase):
    def ensure_defaults(self, *, shard: str = "default", queue: str = "default") -> None:
        """The `default` queue and shard exist out of the box (idempotent)."""
        now = time.time()
        with self.tx() as conn:
            if conn.execute(sa.select(queues.c.name).where(queues.c.name == queue)).first() is None:
                conn.execute(
                    queues.insert().values(name=queue, weight=1.0, config={}, created_at=now)
                )
            if conn.execute(sa.select(shards.c.name).where(shards.c.name == shard)).first() is None:
                conn.execute(shards.insert().values(name=shard, labels={}, created_at=now))
            if (
                conn.execute(sa.select(counters.c.name).where(counters.c.name == "fencing")).first()
                is None
            ):
                conn.execute(counters.insert().values(name="fencing", value=0))

    def upsert_queue(self, name: str, *, weight: float = 1.0, config: dict[str, Any]) -> None:
        now = time.time()
        with self.tx() as conn:
            done = conn.execute(
                queues.update().where(queues.c.name == name).values(weight=weight, config=config)
            )
            if done.rowcount == 0:
                conn.execute(
                    queues.insert().values(name=name, weight=weight, config=config, created_at=now)
                )
