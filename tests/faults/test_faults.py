"""Faults under load, each judged by the history checker (tests/faults/checker.py).

Each test starts real processes (`jobfleet up`, or `server`/`scheduler`/`worker` of a fleet),
pushes a few hundred short jobs through the HTTP API with a client that keeps the ids it was
acknowledged (tests/faults/load.py), injects one fault while they flow, lets everything finish,
and then reads the database: nothing lost, nothing duplicated, every history a legal walk of
the lifecycle table, no run ended twice. Every job must end SUCCEEDED.

Run with `-s` to see, per fault, the jobs pushed through and the checker's counts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from jobfleet.store.engine import normalise_url
from tests.e2e.cluster import CONFIG, TOKEN, Cluster, Proc
from tests.e2e.conftest import finish, free_port, kill_pids, make_env, new_fleet
from tests.faults.checker import Counts, History, check, read_history
from tests.faults.conftest import PrivatePostgres
from tests.faults.load import Load
from tests.faults.proxy import Proxy
from tests.helpers import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

SHORT = ("sleep", "0.2")  # long enough that a fault finds runs in flight


def judge(load: Load, database: str, fault: str, logs: list[Path]) -> Counts:
    """Let every job end, then check the history of the load's job set, and that no thread of
    a jobfleet process died on the way (the process would live on, doing nothing)."""
    acked = load.join()
    load.wait_all_ended()
    counts = check(read_history(database, job_set=load.job_set), acked)
    states = load.states()
    print(f"\n[fault] {fault}: {len(acked)} jobs pushed through; {counts}; states {states}")
    assert counts.clean, counts.report()
    assert counts.jobs == counts.terminal == load.total, counts.report()
    assert states == {"SUCCEEDED": load.total}
    for log in logs:
        assert "Exception in thread" not in log.read_text(errors="replace"), f"see {log}"
    return counts


def start_fleet(
    c: Cluster, workers: dict[str, str | None], *, schedulers: int = 1, cpu: str = "2"
) -> tuple[list[Proc], dict[str, Proc]]:
    """One server, `schedulers` schedulers and the workers (name -> server URL, None for the
    server itself), started side by side and waited for."""
    server = c.server(wait=False)
    scheds = [c.scheduler(f"sched-{i + 1}", wait_leading=False) for i in range(schedulers)]
    procs = {name: worker(c, name, url, cpu=cpu) for name, url in workers.items()}
    wait_for(lambda: c._ready(server), timeout=60, interval=0.1, what="the server")
    wait_for(lambda: leader(scheds), timeout=60, interval=0.1, what="a leading scheduler")
    for name in workers:
        c.wait_registered(name)
    return scheds, procs


def worker(c: Cluster, name: str, url: str | None, *, cpu: str) -> Proc:
    """A worker talking to `url` (a proxy, another replica) or to the cluster's server."""
    return c._spawn(
        name,
        *("worker", "--server", url or c.url, "--token", TOKEN, "--name", name),
        *("--cpu", cpu, "--memory", "2Gi", "--data-dir", str(c.root / name)),
        *("--config", str(c.config)),
    )


def logs(c: Cluster) -> list[Path]:
    return [p.log for p in c.procs]


def leader(scheds: list[Proc]) -> Proc | None:
    leading = [s for s in scheds if "leading the scheduler role" in s.output()]
    return leading[0] if leading else None


def runs_of(c: Cluster, job_set: str) -> History:
    return read_history(c.database, job_set=job_set)


def on_wc(c: Cluster, load: Load, *states: str) -> list[str]:
    """The runs of the load's jobs on worker wc that are in one of `states`."""
    return [r.id for r in runs_of(c, load.job_set).runs if r.worker == "wc" and r.state in states]


def running_on(c: Cluster, name: str) -> int:
    with c.client() as client:
        return int({w["name"]: w["running"] for w in client.workers()}.get(name, 0))


# -- jobfleet up ------------------------------------------------------------------------------


def test_up_killed_with_sigkill_twice_during_submissions(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    config = tmp_path / "fleet.yaml"
    config.write_text(CONFIG)
    fleet = new_fleet(tmp_path / "up", "sqlite", request, config=config)
    sessions: list[int] = []
    load: Load | None = None
    try:
        fleet.start()
        load = Load([fleet.url], fleet.token, "kill-up", 200, command=SHORT).start()
        for acked in (60, 130):
            load.wait_acked(acked)
            wait_for(load.running, timeout=30, interval=0.05, what="a run in flight")
            assert fleet.proc is not None
            fleet.proc.send_signal(signal.SIGKILL)
            fleet.proc.wait(10)
            fleet.proc = None
            sessions.append(fleet.session)
            # Its worker process stops once it sees its parent gone (killing its runs); the
            # new `up` starts when nothing of the old one is left, as an operator's would.
            wait_for(lambda: not fleet.leftovers(), timeout=30, what="the old `up` to be gone")
            fleet.start()
        database = f"sqlite:///{fleet.data_dir / 'jobfleet.db'}"
        counts = judge(load, database, "kill -9 of `up` (twice)", fleet.logs)
        assert counts.runs_lost > 0  # the kills hit runs in flight; they ran again
    finally:
        if load is not None:
            load.close()
        finish(fleet)
        for session in sessions:
            kill_pids(session_pids(session))


def test_the_worker_process_of_up_killed_under_load(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """`up` replaces a worker process that died; the scheduler must not hang waking the dead
    one (a multiprocessing Event's set() waits for ever for a waiter that died waiting)."""
    config = tmp_path / "fleet.yaml"
    config.write_text(CONFIG)
    fleet = new_fleet(tmp_path / "up", "sqlite", request, config=config)
    load: Load | None = None
    try:
        fleet.start()
        load = Load([fleet.url], fleet.token, "kill-up-worker", 200, command=SHORT).start()
        load.wait_acked(60)
        wait_for(load.running, timeout=30, interval=0.05, what="a run in flight")
        assert fleet.proc is not None
        [child] = [p for p in session_pids(fleet.session) if b"spawn_main" in cmdline(p)]
        os.kill(child, signal.SIGKILL)
        database = f"sqlite:///{fleet.data_dir / 'jobfleet.db'}"
        counts = judge(load, database, "kill -9 of the worker process of `up`", fleet.logs)
        assert counts.runs_lost > 0
    finally:
        if load is not None:
            load.close()
        finish(fleet)


def test_up_killed_while_its_worker_process_starts_leaves_nothing_behind(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """`up` SIGKILLed right after it spawned its worker process: that process must notice, once
    started, that its parent is gone, and exit (it looked for a change of its parent pid, which
    it had read after the parent died: it ran on as an orphan, for ever)."""
    fleet = new_fleet(tmp_path / "up", "sqlite", request)
    with open(fleet.root / "up.log", "wb") as out:
        up = subprocess.Popen(
            fleet.argv(),
            env=fleet.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: any(b"spawn_main" in cmdline(pid) for pid in session_pids(up.pid)),
            timeout=30,
            interval=0.01,
            what="the worker process of `up` to be spawned",
        )
        up.send_signal(signal.SIGKILL)
        up.wait(10)
        wait_for(
            lambda: not [p for p in session_pids(up.pid) if p != up.pid],
            timeout=30,
            interval=0.2,
            what="the orphaned worker process to exit",
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            up.kill()
        kill_pids(session_pids(up.pid))


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def session_pids(session: int) -> list[int]:
    """Live processes of a session (zombies waiting for init to reap them do not count)."""
    done = subprocess.run(
        ["ps", "-s", str(session), "-o", "pid=,stat="], capture_output=True, text=True, check=False
    )
    rows = [line.split() for line in done.stdout.splitlines() if line.strip()]
    return [int(pid) for pid, stat, *_ in rows if not stat.startswith("Z")]


# -- a fleet: server replicas, schedulers, workers ------------------------------------------


def test_a_server_replica_killed_while_the_client_fails_over(cluster: Cluster) -> None:
    c = cluster
    other = free_port()
    balancer = Proxy([c.url, f"http://127.0.0.1:{other}"])  # what the workers talk to
    load: Load | None = None
    try:
        first = c.server(wait=False)
        second = c._spawn(
            "server-b",
            *("server", "--database", c.database, "--port", str(other)),
            *("--data-dir", str(c.root / "server-b"), "--config", str(c.config)),
        )
        c.scheduler()
        for name in ("wa", "wb"):
            worker(c, name, balancer.url, cpu="2")
        wait_for(lambda: c._ready(first), timeout=60, interval=0.1, what="server a")
        wait_for(lambda: c._ready(second), timeout=60, interval=0.1, what="server b")
        c.wait_registered("wa")
        c.wait_registered("wb")
        urls = [c.url, f"http://127.0.0.1:{other}"]
        load = Load(urls, TOKEN, "kill-server", 200, command=SHORT).start()
        load.wait_acked(70)
        first.signal(signal.SIGKILL)
        first.wait(10)
        judge(load, c.database, "kill -9 of one of two `server` replicas", logs(c))
        assert load.client.failovers >= 1, "the client never had to fail over"
    finally:
        if load is not None:
            load.close()
        balancer.close()


def test_the_leader_scheduler_killed_under_load(cluster: Cluster) -> None:
    c = cluster
    scheds, _ = start_fleet(c, {"wa": None, "wb": None}, schedulers=2)
    load = Load([c.url], TOKEN, "kill-scheduler", 200, command=SHORT).start()
    try:
        load.wait_acked(70)
        killed = leader(scheds)
        assert killed is not None
        killed.signal(signal.SIGKILL)
        killed.wait(10)
        standby = next(s for s in scheds if s is not killed)
        c.wait_log(standby, "leading the scheduler role")
        judge(load, c.database, "kill -9 of the leading `scheduler` (standby takes over)", logs(c))
    finally:
        load.close()


def test_a_worker_killed_under_load_its_runs_are_lost_and_finish_elsewhere(
    cluster: Cluster,
) -> None:
    c = cluster
    _, workers = start_fleet(c, {"wa": None, "wb": None})
    load = Load([c.url], TOKEN, "kill-worker", 200, command=SHORT).start()
    try:
        load.wait_acked(60)
        wait_for(lambda: running_on(c, "wa") > 0, timeout=30, what="runs on wa")
        workers["wa"].signal(signal.SIGKILL)
        workers["wa"].wait(10)
        judge(load, c.database, "kill -9 of a `worker`", logs(c))
        history = runs_of(c, load.job_set)
        lost = {r.job_id for r in history.runs if r.worker == "wa" and r.state == "LOST"}
        assert lost, "no run of the killed worker was lost"
        finished = {r.job_id: r.worker for r in history.runs if r.state == "SUCCEEDED"}
        assert {finished[job_id] for job_id in lost} == {"wb"}  # finished elsewhere
    finally:
        load.close()


def test_postgres_connections_terminated_while_jobs_flow(cluster: Cluster) -> None:
    c = cluster
    start_fleet(c, {"wa": None, "wb": None})
    # Submissions spread over a few seconds, so that the kills hit submits, placements,
    # starts and reports alike.
    load = Load([c.url], TOKEN, "terminate-backends", 200, command=SHORT, pause=0.1).start()
    killer = BackendKiller(c.database)
    try:
        load.wait_acked(40)
        killer.start()
        wait_for(lambda: killer.rounds >= 12, timeout=60, interval=0.1, what="12 rounds of kills")
        killer.stop()
        assert killer.terminated > 0
        judge(
            load,
            c.database,
            f"pg_terminate_backend of every jobfleet connection, {killer.rounds} times "
            f"({killer.terminated} connections)",
            logs(c),
        )
    finally:
        killer.stop()
        load.close()


class BackendKiller:
    """Terminates every other connection to the database, every 0.3 s, from a thread."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")
        self.terminated = 0
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backend-killer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        with self.engine.connect() as conn:
            while not self._stop.wait(0.3):
                killed = conn.execute(
                    sa.text(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                        "FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).scalar()
                self.terminated += int(killed or 0)
                self.rounds += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.engine.dispose()


def test_a_postgres_restart_under_load(private_pg: PrivatePostgres, tmp_path: Path) -> None:
    env = make_env(tmp_path)
    env["JOBFLEET_ADMIN_TOKEN"] = TOKEN
    c = Cluster(tmp_path, private_pg.url, "postgres", env)
    load: Load | None = None
    try:
        start_fleet(c, {"wa": None, "wb": None})
        load = Load([c.url], TOKEN, "restart-postgres", 200, command=SHORT).start()
        load.wait_acked(60)
        private_pg.stop("immediate")  # a crash: no shutdown checkpoint, recovery at start
        time.sleep(2.0)  # the outage itself: the database is gone for a while
        private_pg.start()
        judge(load, c.database, "PostgreSQL killed (immediate stop) and restarted", logs(c))
    finally:
        if load is not None:
            load.close()
        c.stop()


def test_a_worker_cut_off_past_its_lease_has_its_stale_reports_refused(
    cluster: Cluster,
) -> None:
    c = cluster
    cable = Proxy([c.url])
    load: Load | None = None
    try:
        _, workers = start_fleet(c, {"wa": None, "wc": cable.url})
        load = Load([c.url], TOKEN, "cut-off", 200, command=("sleep", "1")).start()
        load.wait_acked(40)
        # Runs wc has started (it reported them): they end while it is cut off, so its
        # reports on them can only arrive after their leases expired.
        wait_for(lambda: on_wc(c, load, "RUNNING"), timeout=30, what="runs started on wc")
        cable.drop()
        wait_for(
            lambda: on_wc(c, load, "LOST") and not on_wc(c, load, "LEASED", "RUNNING"),
            timeout=30,
            interval=0.2,
            what="every run of the cut-off worker to be lost",
        )
        cable.restore()
        c.wait_log(workers["wc"], "refused")
        counts = judge(
            load, c.database, "a worker cut off (dropping proxy) past its lease", logs(c)
        )
        history = runs_of(c, load.job_set)
        lost = {r.id for r in history.runs if r.worker == "wc" and r.state == "LOST"}
        refused = {
            line.split("report on run ")[1].split()[0]
            for line in workers["wc"].output().splitlines()
            if "report on run " in line and "refused" in line
        }
        assert lost and refused and refused <= lost, (lost, refused)
        assert counts.ended_twice == 0
    finally:
        if load is not None:
            load.close()
        cable.close()
