"""`jobfleet workers`: the table shows each worker's isolation as it reported it."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from jobfleet.cli.fleet import isolation_text, workers_table


def test_isolation_text_names_the_backend_and_namespaces() -> None:
    info = {"isolation": {"backend": "cgroup1", "pid_namespace": True, "network_namespace": True}}
    assert isolation_text(info) == "cgroup1+pid+netns"
    assert isolation_text({"isolation": {"backend": "rlimits"}}) == "rlimits"
    assert isolation_text({}) == "-"


def test_the_workers_table_has_an_isolation_column() -> None:
    now = datetime.now(UTC).timestamp()
    res = {"cpu": 2.0, "memory": 2**30, "gpu": 0}
    worker = {
        "name": "w1",
        "shard": "default",
        "state": "READY",
        "running": 1,
        "allocated": res,
        "capacity": res,
        "labels": {},
        "last_heartbeat": now,
        "info": {"isolation": {"backend": "cgroup2", "pid_namespace": True}},
    }
    console = Console(width=200, record=True)
    console.print(workers_table([worker], datetime.now(UTC)))
    text = console.export_text()
    assert "ISOLATION" in text and "cgroup2+pidns" in text
