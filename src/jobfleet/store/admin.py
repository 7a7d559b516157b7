"""Tokens, queues and shards."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from jobfleet.errors import Conflict, NotFound
from jobfleet.ids import hash_token, new_id, new_token
from jobfleet.store.base import StoreBase
from jobfleet.store.schema import counters, queues, shards, tokens


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    admin: bool


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

    # -- tokens -------------------------------------------------------------------------

    def create_token(self, name: str, *, admin: bool = False, token: str | None = None) -> str:
        """Store a token (hashed) and return it in clear, the only time it is seen."""
        token = token or new_token()
        with self.tx() as conn:
            digest = hash_token(token)
            if conn.execute(sa.select(tokens.c.id).where(tokens.c.hash == digest)).first():
                raise Conflict("this token exists already")
            conn.execute(
                tokens.insert().values(
                    id=new_id(), name=name, hash=digest, admin=admin, created_at=time.time()
                )
            )
        return token

    def ensure_token(self, name: str, token: str, *, admin: bool) -> None:
        """Make sure `token` is valid (idempotent): for JOBFLEET_ADMIN_TOKEN."""
        with self.read() as conn:
            found = conn.execute(
                sa.select(tokens.c.id).where(tokens.c.hash == hash_token(token))
            ).first()
        if found is None:
            self.create_token(name, admin=admin, token=token)

    def has_admin_token(self) -> bool:
        with self.read() as conn:
            return (
                conn.execute(sa.select(tokens.c.id).where(tokens.c.admin == sa.true())).first()
                is not None
            )

    def authenticate(self, token: str) -> Principal:
        with self.read() as conn:
            row = conn.execute(
                sa.select(tokens.c.name, tokens.c.admin).where(tokens.c.hash == hash_token(token))
            ).first()
        if row is None:
            raise NotFound("unknown token")
        return Principal(row.name, bool(row.admin))
