"""Fixtures of the fault suite: fleets of real processes (tests/e2e/cluster.py) and a private
PostgreSQL cluster that a test may stop, kill and restart (started with initdb/pg_ctl on a
free port, as the postgres user when we are root, like ../shared/bench/peers/services.sh).

Without initdb the private-cluster tests skip, except with CI=true, where they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import IN_CI
from tests.e2e.conftest import any_cluster, cluster, free_port  # the fleet fixtures

PG_BIN = Path(os.environ.get("JOBFLEET_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"  # the system user the cluster runs as when the tests run as root


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of our own: `stop()`, `start()`, `restart()` as a test needs."""

    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/jobfleet"

    def _run(self, *argv: str, timeout: float = 90) -> None:
        prefix = ["runuser", "-u", PG_USER, "--"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*prefix, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.root,
        )
        assert done.returncode == 0, f"{argv[0]} failed:\n{done.stdout}\n{done.stderr}"

    def init(self) -> None:
        self._run(
            str(PG_BIN / "initdb"),
            *("-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"),
            "--locale=C",
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# jobfleet fault tests: loopback only, on a port of our own\n"
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\nmax_connections = 200\n"
                # A restart here kills the server, not the machine: the page cache survives,
                # so fsync can be off; commits still reach the WAL before they are answered.
                "fsync = off\n"
            )
        self.start()
        engine = sa.create_engine(
            f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres",
            isolation_level="AUTOCOMMIT",
        )
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE jobfleet"))
        engine.dispose()

    def start(self) -> None:
        log = str(self.root / "server.log")
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", log, "-w", "-t", "60", "start"
        )

    def running(self) -> bool:
        pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status"]
        prefix = ["runuser", "-u", PG_USER, "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *pg_ctl], capture_output=True, timeout=30, check=False)
        return done.returncode == 0

    def stop(self, mode: str = "fast") -> None:
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"
        )

    def reset(self) -> None:
        """An empty `jobfleet` database (each test starts from nothing)."""
        engine = sa.create_engine(
            f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres",
            isolation_level="AUTOCOMMIT",
        )
        with engine.connect() as conn:
            conn.execute(sa.text("DROP DATABASE IF EXISTS jobfleet WITH (FORCE)"))
            conn.execute(sa.text("CREATE DATABASE jobfleet"))
        engine.dispose()


@pytest.fixture(scope="session")
def private_pg_cluster() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists():
        message = f"{PG_BIN}/initdb is missing: cannot start a private PostgreSQL cluster"
        if IN_CI:
            pytest.fail(message + " (CI=true: the fault suite needs it)")
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="jobfleet-faults-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, PG_USER)
    pg = PrivatePostgres(root, free_port())
    try:
        pg.init()
        yield pg
    finally:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            pg.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def private_pg(private_pg_cluster: PrivatePostgres) -> PrivatePostgres:
    """The private cluster, running, with an empty `jobfleet` database."""
    if not private_pg_cluster.running():  # an earlier test stopped it and failed
        private_pg_cluster.start()
    private_pg_cluster.reset()
    return private_pg_cluster


__all__ = ["any_cluster", "cluster", "private_pg", "private_pg_cluster"]
