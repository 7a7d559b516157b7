"""Principals, grants and tokens in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from jobfleet.access import Verb, expand_grants
from jobfleet.errors import Conflict, NotFound
from jobfleet.store import Store
from jobfleet.store.migrate import upgrade
from jobfleet.store.schema import metadata, tokens


def test_a_token_is_stored_only_as_its_hash_and_authenticates_its_principal(store: Store) -> None:
    issued = store.issue_token("alice", grants_=expand_grants(["ml"], [Verb.SUBMIT]))
    with store.read() as conn:
        rows = conn.execute(sa.select(tokens)).all()
    assert [r.hash for r in rows] == [hashlib.sha256(issued.token.encode()).hexdigest()]
    assert all(issued.token not in str(tuple(r)) for r in rows)
    assert rows[0].prefix == issued.token[:8]
    who = store.authenticate(issued.token)
    assert (who.name, who.kind, who.admin) == ("alice", "user", False)
    assert who.grants == {("ml", "submit")}


def test_a_second_token_adds_grants_to_the_same_principal(store: Store) -> None:
    first = store.issue_token("bob", grants_=[("a", "watch")])
    second = store.issue_token("bob", grants_=[("b", "cancel")])
    assert first.principal.id == second.principal.id
    assert store.authenticate(first.token).grants == {("a", "watch"), ("b", "cancel")}
    [bob] = store.list_principals()
    assert bob["grants"] == [{"queue": "a", "verb": "watch"}, {"queue": "b", "verb": "cancel"}]
    assert [t["id"] for t in bob["tokens"]] == [first.id, second.id]
    assert "token" not in str(bob["tokens"]).replace("'tokens'", "")


def test_a_worker_principal_cannot_get_a_user_token(store: Store) -> None:
    store.issue_token("w1", kind="worker")
    with pytest.raises(Conflict, match="worker principal"):
        store.issue_token("w1")


def test_a_revoked_token_no_longer_authenticates(store: Store) -> None:
    store.issue_token("root", admin=True)
    issued = store.issue_token("carol", grants_=[("ml", "watch")])
    store.revoke_token(issued.id)
    with pytest.raises(NotFound):
        store.authenticate(issued.token)
    with pytest.raises(NotFound):
        store.revoke_token(issued.id)


def test_the_last_admin_token_cannot_be_revoked(store: Store) -> None:
    only = store.issue_token("root", admin=True)
    with pytest.raises(Conflict, match="last admin token"):
        store.revoke_token(only.id)
    store.issue_token("root2", admin=True)
    store.revoke_token(only.id)
    assert store.has_admin_token()


def test_migration_gives_each_old_token_a_principal(db_url: str) -> None:
    store = Store(db_url)
    try:
        with store.writer.begin() as conn:  # start from an empty database
            for table in reversed(metadata.sorted_tables):
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {table.name}"))
            conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
        upgrade(store.writer, "0002")
        with store.writer.begin() as conn:
            for i, (name, admin) in enumerate([("admin", True), ("ci", False), ("admin", False)]):
                conn.execute(
                    sa.text(
                        "INSERT INTO tokens (id, name, hash, admin, created_at) "
                        "VALUES (:id, :name, :hash, :admin, :t)"
                    ),
                    {"id": f"T{i}", "name": name, "hash": f"h{i}", "admin": admin, "t": i},
                )
        store.migrate()
        assert store.has_admin_token()
        by_name = {p["name"]: p for p in store.list_principals()}
        assert sorted(by_name) == ["admin", "ci"]
        assert by_name["admin"]["admin"] is True and by_name["ci"]["admin"] is False
        assert [t["id"] for t in by_name["admin"]["tokens"]] == ["T0", "T2"]
    finally:
        store.close()
