"""Principals, their grants and their tokens.

A token is a random secret shown once; only its sha256 is stored, with the first characters
of the secret (`prefix`) so that `jobfleet auth list` can show which token is which.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from jobfleet.access import Kind, Principal
from jobfleet.errors import Conflict, NotFound
from jobfleet.ids import hash_token, new_id, new_token
from jobfleet.store.base import StoreBase
from jobfleet.store.schema import grants, principals, tokens
from jobfleet.store.views import iso

PREFIX_CHARS = 8


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: `token` is the secret, never stored and never shown again."""

    id: str
    token: str
    principal: Principal


class PrincipalOps(StoreBase):
    def issue_token(
        self,
        name: str,
        *,
        kind: str = Kind.USER.value,
        admin: bool = False,
        grants_: Iterable[tuple[str, str]] = (),
        token: str | None = None,
        worker_name: str | None = None,
    ) -> IssuedToken:
        """A new token for principal `name`, made if missing; `grants_` are added to it.
        `worker_name` binds a worker token to that worker: it may act only as that worker.

        An existing principal keeps its grants and tokens; asking for another kind than it has
        is a Conflict (a worker principal never gets queue verbs, nor a user a worker token).
        """
        token = token or new_token("jfw" if kind == Kind.WORKER.value else "jf")
        digest, now = hash_token(token), time.time()
        with self.tx() as conn:
            if conn.execute(sa.select(tokens.c.id).where(tokens.c.hash == digest)).first():
                raise Conflict("this token exists already")
            pid = self._principal_for(conn, name, kind, admin, now)
            self._add_grants(conn, pid, grants_)
            token_id = new_id()
            conn.execute(
                tokens.insert().values(
                    id=token_id,
                    name=name,
                    hash=digest,
                    principal_id=pid,
                    prefix=token[:PREFIX_CHARS],
                    created_at=now,
                    worker_name=worker_name,
                )
            )
            who = self._load_principal(conn, pid, worker_name)
        return IssuedToken(token_id, token, who)

    def create_token(self, name: str, *, admin: bool = False, token: str | None = None) -> str:
        """Store a token (hashed) of user principal `name`; return it in clear, once."""
        return self.issue_token(name, admin=admin, token=token).token

    def ensure_token(self, name: str, token: str, *, admin: bool) -> None:
        """Make sure `token` is valid (idempotent): for JOBFLEET_ADMIN_TOKEN."""
        if self._token_known(token):
            return
        try:
            self.issue_token(name, admin=admin, token=token)
        except Conflict:
            if not self._token_known(token):
                raise
            # else another process starting at the same time stored it first: it is valid

    def _token_known(self, token: str) -> bool:
        with self.read() as conn:
            stmt = sa.select(tokens.c.id).where(tokens.c.hash == hash_token(token))
            return conn.execute(stmt).first() is not None

    def has_admin_token(self) -> bool:
        stmt = (
            sa.select(tokens.c.id)
            .join(principals, principals.c.id == tokens.c.principal_id)
            .where(principals.c.admin == sa.true())
            .limit(1)
        )
        with self.read() as conn:
            return conn.execute(stmt).first() is not None

    def authenticate(self, token: str) -> Principal:
        """The principal owning `token`; NotFound for an unknown or revoked token."""
        with self.read() as conn:
            row = conn.execute(
                sa.select(tokens.c.principal_id, tokens.c.worker_name).where(
                    tokens.c.hash == hash_token(token)
                )
            ).first()
            if row is None:
                raise NotFound("unknown token")
            return self._load_principal(conn, row.principal_id, row.worker_name)

    def list_principals(self) -> list[dict[str, Any]]:
        """Every principal with its grants and tokens (ids and prefixes, never secrets)."""
        with self.read() as conn:
            rows = conn.execute(sa.select(principals).order_by(principals.c.name)).all()
            grant_rows = conn.execute(
                sa.select(grants).order_by(grants.c.queue, grants.c.verb)
            ).all()
            token_rows = conn.execute(sa.select(tokens).order_by(tokens.c.created_at)).all()
        views = {r.id: principal_view(r._mapping) for r in rows}
        for g in grant_rows:
            if g.principal_id in views:
                views[g.principal_id]["grants"].append({"queue": g.queue, "verb": g.verb})
        for t in token_rows:
            if t.principal_id in views:
                views[t.principal_id]["tokens"].append(token_view(t._mapping))
        return list(views.values())

    def revoke_token(self, token_id: str) -> dict[str, Any]:
        """Delete a token; the last token of the last admin cannot be revoked (lock-out)."""
        with self.tx() as conn:
            row = conn.execute(sa.select(tokens).where(tokens.c.id == token_id)).first()
            if row is None:
                raise NotFound(f"no token {token_id!r}: `jobfleet auth list` shows the ids")
            if self._is_last_admin_token(conn, token_id):
                raise Conflict(
                    f"token {token_id} is the last admin token: create another admin token "
                    "first (`jobfleet auth create-token NAME --admin`)"
                )
            conn.execute(tokens.delete().where(tokens.c.id == token_id))
        return token_view(row._mapping)

    # -- helpers ------------------------------------------------------------------------------

    def _principal_for(
        self, conn: sa.Connection, name: str, kind: str, admin: bool, now: float
    ) -> str:
        row = conn.execute(sa.select(principals).where(principals.c.name == name)).first()
        if row is None:
            pid = new_id()
            conn.execute(
                principals.insert().values(
                    id=pid, name=name, kind=kind, admin=admin, created_at=now
                )
            )
            return pid
        if row.kind != kind:
            raise Conflict(
                f"principal {name!r} is a {row.kind} principal; it cannot get a {kind} token"
            )
        if admin and not row.admin:
            conn.execute(principals.update().where(principals.c.id == row.id).values(admin=True))
        return str(row.id)

    @staticmethod
    def _add_grants(conn: sa.Connection, pid: str, pairs: Iterable[tuple[str, str]]) -> None:
        have = {
            (r.queue, r.verb)
            for r in conn.execute(sa.select(grants).where(grants.c.principal_id == pid))
        }
        new = sorted(set(pairs) - have)
        if new:
            conn.execute(
                grants.insert(), [{"principal_id": pid, "queue": q, "verb": v} for q, v in new]
            )

    @staticmethod
    def _load_principal(conn: sa.Connection, pid: str, worker_name: str | None = None) -> Principal:
        row = conn.execute(sa.select(principals).where(principals.c.id == pid)).one()
        pairs = conn.execute(
            sa.select(grants.c.queue, grants.c.verb).where(grants.c.principal_id == pid)
        ).all()
        return Principal(
            name=row.name,
            admin=bool(row.admin),
            kind=row.kind,
            grants=frozenset((q, v) for q, v in pairs),
            id=row.id,
            worker_name=worker_name,
        )

    @staticmethod
    def _is_last_admin_token(conn: sa.Connection, token_id: str) -> bool:
        admin_tokens = conn.execute(
            sa.select(tokens.c.id)
            .join(principals, principals.c.id == tokens.c.principal_id)
            .where(principals.c.admin == sa.true())
        ).scalars()
        ids = set(admin_tokens)
        return ids == {token_id}


def principal_view(m: Any) -> dict[str, Any]:
    return {
        "id": m["id"],
        "name": m["name"],
        "kind": m["kind"],
        "admin": bool(m["admin"]),
        "created_at": iso(m["created_at"]),
        "grants": [],
        "tokens": [],
    }


def token_view(m: Any) -> dict[str, Any]:
    view = {"id": m["id"], "prefix": m["prefix"], "created_at": iso(m["created_at"])}
    if m.get("worker_name"):
        view["worker_name"] = m["worker_name"]
    return view
