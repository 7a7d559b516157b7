"""`jobfleet auth create-token | list | revoke` against a real `jobfleet up`."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import Fleet

pytestmark = pytest.mark.e2e


def test_create_list_use_and_revoke_a_token(shared_fleet: Fleet) -> None:
    made = shared_fleet.cli(
        "auth", "create-token", "alice", "--queue", "default", "--verb", "watch", "-o", "json"
    )
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)
    secret, token_id = token["token"], token["id"]

    submit = shared_fleet.cli("--token", secret, "submit", "--", "true")
    assert submit.returncode == 2
    assert "may not submit in queue 'default'" in submit.stderr
    assert shared_fleet.cli("--token", secret, "list").returncode == 0

    listing = shared_fleet.cli("auth", "list", "-o", "json")
    assert secret not in listing.stdout
    alice = next(p for p in json.loads(listing.stdout) if p["name"] == "alice")
    assert alice["grants"] == [{"queue": "default", "verb": "watch"}]
    table = shared_fleet.cli("auth", "list").stdout
    assert "alice" in table and "default: watch" in table and token_id in table

    denied = shared_fleet.cli("--token", secret, "auth", "list")
    assert denied.returncode == 2 and "not an admin" in denied.stderr

    assert shared_fleet.cli("auth", "revoke", token_id).stdout.strip() == f"revoked {token_id}"
    after = shared_fleet.cli("--token", secret, "list")
    assert after.returncode == 2 and "not valid" in after.stderr


def test_create_token_prints_only_the_secret_on_stdout(shared_fleet: Fleet) -> None:
    made = shared_fleet.cli("auth", "create-token", "w-node1", "--worker")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip().startswith("jfw_") and len(made.stdout.splitlines()) == 1
    assert "worker principal w-node1" in made.stderr and "shown only now" in made.stderr
    bad = shared_fleet.cli("auth", "create-token", "x", "--worker", "--admin")
    assert bad.returncode == 2 and "--worker takes no" in bad.stderr


def test_create_token_binds_a_worker_token_to_one_worker_name(shared_fleet: Fleet) -> None:
    made = shared_fleet.cli("auth", "create-token", "w-node2", "--worker-name", "w-node2")
    assert made.returncode == 0, made.stderr
    assert "bound to worker w-node2" in made.stderr
    listed = shared_fleet.cli("auth", "list", "-o", "json")
    [node] = [p for p in json.loads(listed.stdout) if p["name"] == "w-node2"]
    assert [t.get("worker_name") for t in node["tokens"]] == ["w-node2"]
