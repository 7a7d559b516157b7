"""Logs of a run on another machine, as real processes (PRODUCT.md §8): `jobfleet server`,
`jobfleet scheduler` and a `jobfleet worker` whose data directory is not the server's. The
worker ships the run's output while it runs (`jobfleet logs -f` shows it before the job ends),
and the server keeps it: after the worker is SIGKILLed and its disk wiped, `logs` still has it.
"""

from __future__ import annotations

import queue
import shutil
import signal
import subprocess
import threading

import pytest

from tests.e2e.cluster import TOKEN, Cluster
from tests.e2e.conftest import JOBFLEET, run_cli

pytestmark = pytest.mark.e2e


def test_a_remote_workers_logs_stream_to_the_api_and_outlive_the_worker(cluster: Cluster) -> None:
    c = cluster
    workers = c.start("wlog")
    go = c.root / "go"
    job_id = c.submit(
        f"echo line 1; echo line 2; echo oops >&2; "
        f"while [ ! -e {go} ]; do sleep 0.05; done; echo line 3"
    )
    c.wait_job(job_id, lambda j: j["state"] == "RUNNING", what="the job RUNNING")
    assert not (c.root / "server" / "logs").exists() or not any(
        (c.root / "server" / "logs").rglob("*.log")
    ), "the server's disk must not hold the run's log: this test is about shipping"
    cli = [JOBFLEET, "--server", c.url, "--token", TOKEN, "logs", job_id]
    follower = subprocess.Popen(
        [*cli, "-f", "--stream", "stdout"], env=c.env, stdout=subprocess.PIPE, text=True
    )
    got: queue.Queue[str] = queue.Queue()
    assert follower.stdout is not None
    out = follower.stdout
    threading.Thread(target=lambda: [got.put(line) for line in out], daemon=True).start()
    try:
        assert [got.get(timeout=15), got.get(timeout=15)] == ["line 1\n", "line 2\n"]
        assert c.job(job_id)["state"] == "RUNNING"  # streamed while the job still runs
        go.touch()
        assert got.get(timeout=15) == "line 3\n"
        assert follower.wait(timeout=15) == 0  # `logs -f` ends with the run
    finally:
        if follower.poll() is None:
            follower.kill()
    c.wait_job(job_id, lambda j: j["state"] == "SUCCEEDED", what="success")
    workers["wlog"].signal(signal.SIGKILL)
    workers["wlog"].wait(timeout=15)
    shutil.rmtree(c.root / "wlog")  # the worker's disk is gone too
    assert run_cli(c.env, *cli[1:], "--stream", "stdout").stdout == "line 1\nline 2\nline 3\n"
    assert run_cli(c.env, *cli[1:], "--stream", "stderr").stdout == "oops\n"
