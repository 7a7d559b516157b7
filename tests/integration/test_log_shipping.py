"""Logs shipped by a remote worker (`POST /v1/workers/{name}/logs`, real HTTP, SQLite and
PostgreSQL): stored once, fenced, bounded, served by `GET /v1/jobs/{id}/logs` (text and SSE)
and by the dashboard, deleted with the job by retention."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobfleet.client.sync import ServerUnreachable
from jobfleet.protocol import Assignment, Capacity, Finished, LogAck, LogChunk, Started
from jobfleet.runfiles import RunFiles, Stream
from jobfleet.worker.agent import Worker
from jobfleet.worker.http import HttpLink
from jobfleet.worker.logpump import stamp
from jobfleet.worker.shipper import HttpShipper
from tests.helpers import wait_for
from tests.integration.conftest import TOKEN, Api
from tests.integration.test_api_fleet import REMOTE, remote_link
from tests.integration.test_web import signed_in, sse_until

W = "remote-1"


def lines(*texts: str) -> bytes:
    return b"".join(stamp() + t.encode() + b"\n" for t in texts)


@pytest.fixture
def leased(api: Api) -> Iterator[tuple[HttpLink, Assignment]]:
    """A job leased to the remote worker `remote-1` and started there."""
    link, inc = remote_link(api)
    api.submit(command=["true"], selector=REMOTE)
    sync = wait_for(
        lambda: (s := link.sync(W, incarnation=inc, renew=True)).assignments and s,
        what="a lease for the remote worker",
    )
    [a] = sync.assignments
    assert link.report(W, [Started(a.run_id, a.fencing, time.time())], []).refused == {}
    yield link, a
    link.close()


def ship(
    link: HttpLink, a: Assignment, offset: int, data: bytes, stream: Stream = "stdout"
) -> LogAck:
    return link.ship_logs(W, [LogChunk(a.run_id, a.fencing, stream, offset, data)])


def finish(link: HttpLink, a: Assignment) -> None:
    done = Finished(a.run_id, a.fencing, "succeeded", time.time(), 0)
    assert link.report(W, [], [done]).refused == {}


def test_shipped_lines_are_served_as_text_by_stream_run_and_with_timestamps(
    api: Api, leased: tuple[HttpLink, Assignment]
) -> None:
    link, a = leased
    out, err = lines("one", "two"), lines("oops")
    ack = link.ship_logs(
        W,
        [
            LogChunk(a.run_id, a.fencing, "stdout", 0, out),
            LogChunk(a.run_id, a.fencing, "stderr", 0, err),
        ],
    )
    assert ack.acked == {a.run_id: {"stdout": len(out), "stderr": len(err)}}
    assert ack.refused == {}
    url = f"/v1/jobs/{a.job_id}/logs"
    assert api.http.get(url).text == "one\ntwo\n"
    assert api.http.get(url, params={"stream": "stderr", "run": a.run_id}).text == "oops\n"
    assert api.http.get(url, params={"timestamps": "true"}).text == out.decode()
    assert api.http.get(url, params={"tail": 4}).text.endswith("two\n")


def test_a_follower_sees_shipped_lines_within_a_second_and_ends_with_the_run(
    api: Api, leased: tuple[HttpLink, Assignment]
) -> None:
    link, a = leased
    first = lines("first")
    ship(link, a, 0, first)
    params = {"follow": "true"}
    with api.http.stream("GET", f"/v1/jobs/{a.job_id}/logs", params=params) as r:
        events = _events(r.iter_lines())
        assert next(events) == ("log", "first")
        ship(link, a, len(first), lines("second"))
        shipped = time.monotonic()
        assert next(events) == ("log", "second")
        assert time.monotonic() - shipped < 1.0
        finish(link, a)
        assert next(events) == ("end", "SUCCEEDED")


def _events(raw: Iterator[str]) -> Iterator[tuple[str, str]]:
    kind = ""
    for line in raw:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
            yield kind, data.get("line") or data.get("state")


def test_a_resent_chunk_is_stored_once_and_a_gap_is_not_stored(
    api: Api, leased: tuple[HttpLink, Assignment]
) -> None:
    link, a = leased
    one, two = lines("one"), lines("two")
    assert ship(link, a, 0, one).acked[a.run_id]["stdout"] == len(one)
    assert ship(link, a, 0, one).acked[a.run_id]["stdout"] == len(one)  # the answer was lost
    gap = ship(link, a, len(one) + 5, two)  # the server says where to resume
    assert gap.acked[a.run_id]["stdout"] == len(one)
    both = ship(link, a, 0, one + two)  # overlapping: only the new part is stored
    assert both.acked[a.run_id]["stdout"] == len(one + two)
    assert api.http.get(f"/v1/jobs/{a.job_id}/logs").text == "one\ntwo\n"
    assert api.store.log_size(a.run_id, "stdout") == len(one + two)
    assert api.store.read_log(a.run_id, "stdout", 3, 40) == (one + two)[3:43]  # across chunks


def test_a_log_of_many_small_chunks_reads_back_whole_and_from_any_offset(
    api: Api, leased: tuple[HttpLink, Assignment]
) -> None:
    _, a = leased
    parts = [f"{i:04d}\n".encode() for i in range(1200)]  # more than one query's worth of rows
    chunks = [LogChunk(a.run_id, a.fencing, "stdout", i * 5, p) for i, p in enumerate(parts)]
    api.store.store_log_chunks(W, chunks, limit=2**20)
    whole = b"".join(parts)
    assert api.store.read_log(a.run_id, "stdout", 0, 2**20) == whole
    assert api.store.read_log(a.run_id, "stdout", 4001, 7) == whole[4001:4008]
    assert api.http.get(f"/v1/jobs/{a.job_id}/logs", params={"tail": 10}).text.endswith(
        "1198\n1199\n"
    )


def test_chunks_under_a_wrong_fencing_token_or_of_another_worker_store_nothing(
    api: Api, leased: tuple[HttpLink, Assignment]
) -> None:
    link, a = leased
    forged = link.ship_logs(W, [LogChunk(a.run_id, a.fencing + 1000, "stdout", 0, lines("x"))])
    assert forged.acked == {} and "fencing" in forged.refused[a.run_id]
    other = link.ship_logs("remote-2", [LogChunk(a.run_id, a.fencing, "stdout", 0, lines("x"))])
    assert "no such run" in other.refused[a.run_id]
    finish(link, a)
    late = ship(link, a, 0, lines("late"))
    assert "already ended" in late.refused[a.run_id]
    assert api.store.log_size(a.run_id, "stdout") == 0
    assert api.http.get(f"/v1/jobs/{a.job_id}/logs").text == ""


def test_bad_or_oversized_log_requests_are_refused_with_the_field(
    api: Api, leased: tuple[HttpLink, Assignment]
) -> None:
    _, a = leased
    url = f"/v1/workers/{W}/logs"
    chunk = {"run_id": a.run_id, "fencing": a.fencing, "stream": "stdout", "offset": 0}
    r = api.http.post(url, json={"chunks": [{**chunk, "data": "not base64!"}]})
    assert r.status_code == 422
    assert ["body", "chunks", 0, "data"] in [e["loc"] for e in r.json()["errors"]]
    huge = "A" * (400 * 1024)  # over one chunk's limit
    r = api.http.post(url, json={"chunks": [{**chunk, "data": huge}]})
    assert r.status_code == 422
    assert api.store.log_size(a.run_id, "stdout") == 0


def test_the_server_keeps_at_most_its_limit_per_run(
    api: Api, leased: tuple[HttpLink, Assignment]
) -> None:
    _, a = leased
    big = lines("x" * 3000, "y" * 3000)
    ack = api.store.store_log_chunks(
        W, [LogChunk(a.run_id, a.fencing, "stdout", 0, big)], limit=4096
    )
    assert ack.acked[a.run_id]["stdout"] == len(big)  # acknowledged: the worker moves on
    more = LogChunk(a.run_id, a.fencing, "stderr", 0, lines("z"))
    assert api.store.store_log_chunks(W, [more], limit=4096).acked[a.run_id]["stderr"] > 0
    kept = api.store.read_log(a.run_id, "stdout", 0, 2**20)
    assert kept.startswith(big[:4096]) and b"server log limit of 4096 bytes" in kept
    assert api.store.log_size(a.run_id, "stderr") == 0


def test_retention_deletes_a_jobs_log_chunks_with_it(
    api: Api, leased: tuple[HttpLink, Assignment]
) -> None:
    link, a = leased
    ship(link, a, 0, lines("bye"))
    finish(link, a)
    deleted = api.store.delete_jobs([a.job_id])
    assert deleted.counts["log_chunks"] == 1 and deleted.counts["jobs"] == 1
    assert api.store.read_log(a.run_id, "stdout", 0, 2**20) == b""


def test_the_dashboard_shows_and_follows_shipped_logs(
    api: Api, leased: tuple[HttpLink, Assignment]
) -> None:
    link, a = leased
    one = lines("shipped one")
    ship(link, a, 0, one + lines("shipped two"))
    finish(link, a)
    with signed_in(api) as c:
        page = c.get(f"/ui/jobs/{a.job_id}")
        seen = sse_until(c, f"/ui/jobs/{a.job_id}/logs/stream?offset={len(one)}", "end")
    assert "shipped one" in page.text and "shipped two" in page.text
    text = "".join(
        json.loads(line[5:]).get("text", "") for line in seen if line.startswith("data:")
    )
    assert "shipped two" in text and "shipped one" not in text


class FlakyLink:
    """The real link, but the server is away for the first `down` calls."""

    def __init__(self, link: HttpLink, down: int) -> None:
        self.link, self.down = link, down

    def ship_logs(self, worker: str, chunks: list[LogChunk]) -> LogAck:
        if self.down:
            self.down -= 1
            raise ServerUnreachable("http://away")
        return self.link.ship_logs(worker, chunks)


def test_the_shipper_sends_new_bytes_resumes_after_an_outage_and_flushes_at_the_end(
    api: Api, leased: tuple[HttpLink, Assignment], tmp_path: Path
) -> None:
    link, a = leased
    files = RunFiles(tmp_path / "worker")  # the worker's own disk, not the server's
    files.prepare(a.run_id, work_dir=False)
    path = files.log(a.run_id, "stdout")
    path.write_bytes(lines("before"))
    flaky = FlakyLink(link, down=1)
    shipper = HttpShipper(flaky, files, W)
    with pytest.raises(ServerUnreachable):
        shipper.ship({a.run_id: a.fencing})
    shipper.ship({a.run_id: a.fencing})  # the server is back: nothing was lost
    assert api.http.get(f"/v1/jobs/{a.job_id}/logs").text == "before\n"
    with open(path, "ab") as f:
        f.write(lines("after") + b"x" * 300_000 + b"\n")  # more than one chunk
    shipper.ship({a.run_id: a.fencing}, final=True)
    text = api.http.get(f"/v1/jobs/{a.job_id}/logs").text
    assert text.startswith("before\nafter\nxxx") and len(text) == len("before\nafter\n") + 300_001
    shipper.ship({a.run_id: a.fencing})  # an ended run is not shipped again
    assert api.store.log_size(a.run_id, "stdout") == path.stat().st_size


def test_logs_on_this_servers_disk_are_still_read_directly(api: Api) -> None:
    job = api.submit(command=["sh", "-c", "echo local"])
    api.wait_state(str(job["id"]), "SUCCEEDED")
    assert api.http.get(f"/v1/jobs/{job['id']}/logs").text == "local\n"
    run_id = str(api.job(str(job["id"]))["runs"][0]["id"])  # type: ignore[index]
    assert api.store.log_size(run_id, "stdout") == 0  # nothing shipped under `up`


class AwayAtTheEnd:
    """The real shipper, but the server is away for the first final shipment; records the job's
    state each time an ended run's log is shipped."""

    def __init__(self, inner: HttpShipper, api: Api) -> None:
        self.inner, self.api = inner, api
        self.failed = False
        self.states: list[object] = []

    def start(self, live: Callable[[], dict[str, int]]) -> None:
        self.inner.start(live)

    def stop(self) -> None:
        self.inner.stop()

    def ship(self, runs: dict[str, int], *, final: bool = False) -> None:
        if final:
            self.states += [self.api.store.get_job(r.rsplit("-", 1)[0])["state"] for r in runs]
            if not self.failed:
                self.failed = True
                raise ServerUnreachable("http://away")
        self.inner.ship(runs, final=final)


def test_a_remote_agent_ships_the_whole_log_before_it_reports_the_end(
    api: Api, tmp_path: Path
) -> None:
    link = HttpLink(api.url, TOKEN)
    files = RunFiles(tmp_path / "remote")  # not the server's data directory
    shipper = AwayAtTheEnd(HttpShipper(link, files, W), api)
    worker = Worker(
        link,
        files,
        name=W,
        shard="default",
        capacity=Capacity(2000, 2**30),
        lease_timeout=5,
        labels=REMOTE,
        poll=0.1,
        shipper=shipper,
    )
    worker.start()
    try:
        job = api.submit(command=["sh", "-c", "echo a; echo b >&2; echo c"], selector=REMOTE)
        api.wait_state(str(job["id"]), "SUCCEEDED")
    finally:
        worker.stop()
        link.close()
    assert shipper.failed and len(shipper.states) == 2  # shipped again after the failure ...
    assert set(shipper.states) <= {"LEASED", "RUNNING"}  # ... and the end was reported after
    url = f"/v1/jobs/{job['id']}/logs"
    assert api.http.get(url).text == "a\nc\n"
    assert api.http.get(url, params={"stream": "stderr"}).text == "b\n"
