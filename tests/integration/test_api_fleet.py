"""The worker protocol over real HTTP (`HttpLink` against the API), and the fleet views."""

from __future__ import annotations

import threading
import time

import pytest

from jobfleet.client.sync import ServerUnreachable
from jobfleet.errors import Conflict, Forbidden
from jobfleet.protocol import Capacity, Finished, Started
from jobfleet.store.schema import workers
from jobfleet.worker.http import HttpLink
from tests.e2e.conftest import free_port
from tests.helpers import wait_for
from tests.integration.conftest import TOKEN, Api

REMOTE = {"remote": "yes"}


def remote_link(api: Api) -> tuple[HttpLink, str]:
    link = HttpLink(api.url, TOKEN)
    inc = link.register_worker("remote-1", "default", Capacity(2000, 2**30), labels=REMOTE)
    return link, inc


def test_a_remote_worker_leases_starts_and_finishes_a_job_over_http(api: Api) -> None:
    link, inc = remote_link(api)
    assert link.lease_timeout == 5
    job = api.submit(command=["true"], selector=REMOTE)
    sync = wait_for(
        lambda: (s := link.sync("remote-1", incarnation=inc, renew=True)).assignments and s,
        what="a lease for the remote worker",
    )
    [a] = sync.assignments
    assert a.job_id == job["id"] and sync.stop == [] and sync.orders == {}
    forged = link.report("remote-1", [Started(a.run_id, a.fencing + 1000, time.time())], [])
    assert forged.accepted == [] and "fencing" in forged.refused[a.run_id]
    ok = link.report(
        "remote-1",
        [Started(a.run_id, a.fencing, time.time())],
        [Finished(a.run_id, a.fencing, "succeeded", time.time(), 0)],
    )
    assert ok.accepted == [a.run_id, a.run_id] and ok.refused == {}
    assert api.job(str(job["id"]))["state"] == "SUCCEEDED"
    again = link.report("remote-1", [], [Finished(a.run_id, a.fencing, "failed", time.time(), 1)])
    assert "already ended" in again.refused[a.run_id]  # a run never ends twice
    link.close()


def test_reconcile_tells_a_worker_to_stop_runs_it_no_longer_holds(api: Api) -> None:
    link, inc = remote_link(api)
    answer = link.sync("remote-1", incarnation=inc, held=["not-a-run-of-yours"], renew=True)
    assert answer.stop == ["not-a-run-of-yours"]
    link.close()


def test_views_list_workers_and_shards(api: Api) -> None:
    link, _ = remote_link(api)
    workers = api.http.get("/v1/workers").json()["items"]
    names = {w["name"]: w for w in workers}
    assert names["remote-1"]["labels"] == REMOTE and names["remote-1"]["state"] == "READY"
    assert names["remote-1"]["capacity"] == {"cpu": 2.0, "memory": 2**30, "gpu": 0}
    link.set_worker_state("remote-1", "DRAINING")
    workers = api.http.get("/v1/workers").json()["items"]
    assert {w["name"]: w["state"] for w in workers}["remote-1"] == "DRAINING"
    [shard] = api.http.get("/v1/shards").json()["items"]
    assert shard["name"] == "default" and shard["workers"] == 1 and shard["workers_total"] == 2
    link.close()


def test_worker_routes_refuse_a_plain_token_and_bad_bodies(api: Api) -> None:
    user = api.store.create_token("user", admin=False)
    link = HttpLink(api.url, user)
    with pytest.raises(Forbidden, match="worker token"):
        link.register_worker("sneaky", "default", Capacity(1000, 2**30))
    link.close()
    r = api.http.post(
        "/v1/workers",
        json={"name": "w", "capacity": {"cpu_milli": -1, "memory": 1}, "labels": {"bad key": "x"}},
    )
    assert r.status_code == 422
    locs = [e["loc"] for e in r.json()["errors"]]
    assert ["body", "capacity", "cpu_milli"] in locs and ["body", "labels"] in locs
    assert "sneaky" not in {w["name"] for w in api.http.get("/v1/workers").json()["items"]}


def test_an_unreachable_server_raises_after_a_few_quick_retries() -> None:
    link = HttpLink(f"http://127.0.0.1:{free_port()}", "t", attempts=2)
    started = time.monotonic()
    with pytest.raises(ServerUnreachable):
        link.sync("w", renew=True)
    assert time.monotonic() - started < 5
    link.close()


def test_a_workers_long_poll_answers_when_a_lease_is_written(api: Api) -> None:
    """POST /v1/workers/{name}/wait: at once the first time; then held open until a lease (or
    kill order) is written, so a remote worker hears of a new job without polling."""
    link, inc = remote_link(api)
    began = time.monotonic()
    seen = link.wait_for_work("remote-1", None)  # the first call answers at once
    assert time.monotonic() - began < 5
    box: dict[str, object] = {}

    def poll() -> None:
        began = time.monotonic()
        box["seen"] = link.wait_for_work("remote-1", seen)
        box["took"] = time.monotonic() - began

    waiter = threading.Thread(target=poll)
    waiter.start()
    time.sleep(0.3)  # the poll is held open: nothing was leased yet
    assert waiter.is_alive()
    api.submit(command=["true"], selector=REMOTE)
    waiter.join(timeout=10)
    assert not waiter.is_alive() and box["seen"] != seen
    assert float(box["took"]) < 10  # type: ignore[arg-type]
    sync = link.sync("remote-1", incarnation=inc)
    assert len(sync.assignments) == 1


# -- worker identity and bound tokens (PRODUCT.md §14.4) ---------------------------------------

ID_A, ID_B = "a" * 32, "b" * 32


def test_a_live_workers_name_cannot_be_taken_by_another_identity(api: Api) -> None:
    link = HttpLink(api.url, TOKEN)
    first = link.register_worker(
        "named", "default", Capacity(1000, 2**30), info={"hostname": "host-a"}, identity=ID_A
    )
    with pytest.raises(Conflict) as refused:
        link.register_worker(
            "named", "default", Capacity(1000, 2**30), info={"hostname": "host-b"}, identity=ID_B
        )
    assert refused.value.status == 409
    assert "host-a" in str(refused.value) and "last heartbeat" in str(refused.value)
    # The live worker is untouched: its incarnation still syncs.
    assert link.sync("named", incarnation=first, renew=True).stop == []
    # The same identity is a restart: accepted, a new incarnation.
    again = link.register_worker("named", "default", Capacity(1000, 2**30), identity=ID_A)
    assert again != first
    link.close()


def test_a_silent_workers_name_is_free_again(api: Api) -> None:
    link = HttpLink(api.url, TOKEN)
    link.register_worker("gone", "default", Capacity(1000, 2**30), identity=ID_A)
    with api.store.tx() as conn:
        conn.execute(
            workers.update().where(workers.c.name == "gone").values(last_heartbeat=time.time() - 60)
        )
    link.register_worker("gone", "default", Capacity(1000, 2**30), identity=ID_B)
    link.close()


def test_a_bound_worker_token_acts_only_as_its_worker(api: Api) -> None:
    made = api.http.post("/v1/auth/tokens", json={"name": "node-7", "worker_name": "node-7"}).json()
    assert made["principal"]["kind"] == "worker" and made["principal"]["worker_name"] == "node-7"
    link = HttpLink(api.url, made["token"])
    with pytest.raises(Forbidden, match="bound to worker 'node-7'"):
        link.register_worker("node-8", "default", Capacity(1000, 2**30))
    inc = link.register_worker("node-7", "default", Capacity(1000, 2**30))
    assert link.sync("node-7", incarnation=inc, renew=True).stop == []
    with pytest.raises(Forbidden, match="cannot act as worker 'node-1'"):
        link.sync("node-1", renew=True)
    link.close()
