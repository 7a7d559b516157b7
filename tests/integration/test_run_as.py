"""Jobs of a root worker run as `worker.run_as` (PRODUCT.md §14.5), through a real Executor:
they own their working dir and their own files, and can read none of jobfleet's secrets, nor a
`file://` payload their user could not read (START_ERROR)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobfleet import datadir
from jobfleet.worker import runas
from tests.integration.isolationkit import Runner

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs a root worker")


@pytest.fixture
def base() -> Iterator[Path]:
    """A data dir's parent the job user can pass through (pytest's tmp dirs are root-only)."""
    path = Path(tempfile.mkdtemp(prefix="jobfleet-runas-"))
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def runner(base: Path) -> Iterator[Runner]:
    user = runas.resolve("nobody")
    assert user is not None
    runas.prepare_data_dir(base / "data", user)
    r = Runner(base, run_as=user)
    yield r
    r.close()


def test_a_job_runs_as_nobody_in_a_working_dir_of_its_own(runner: Runner) -> None:
    run = runner.start(["sh", "-c", 'id -u; echo "$HOME"; pwd; touch mine'])
    assert runner.wait(run).outcome == "succeeded", runner.log(run, "stderr")
    uid, home, cwd = runner.log(run).split()
    assert int(uid) == 65534 and cwd == str(runner.files.work_dir(run))
    st = runner.files.work_dir(run).stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (65534, 0o700)
    assert (runner.files.work_dir(run) / "mine").stat().st_uid == 65534
    assert stat.S_IMODE(runner.files.log(run, "stdout").stat().st_mode) == 0o600
    assert stat.S_IMODE(runner.files.data_dir.stat().st_mode) == 0o711
    assert home  # the user's home, or its working dir when it has none


def test_a_job_cannot_read_jobfleets_secrets(runner: Runner) -> None:
    data = runner.files.data_dir
    token = datadir.private_file(data / "admin-token")
    token.write_text("jf_secret\n")
    db = datadir.private_file(data / "jobfleet.db")
    other = runner.start(["sh", "-c", "echo other-run-output"])
    assert runner.wait(other).outcome == "succeeded"
    secrets = [token, db, runner.files.log(other, "stdout")]
    script = "; ".join(f"cat {p} || ls {p}" for p in secrets) + f"; ls {data}; ls {data}/logs"
    run = runner.start(["sh", "-c", script])
    assert runner.wait(run).outcome == "failed"
    assert "jf_secret" not in runner.log(run) and "other-run-output" not in runner.log(run)
    assert runner.log(run, "stderr").count("Permission denied") >= len(secrets) + 2


def test_a_job_writes_its_termination_log_and_checkpoint(runner: Runner) -> None:
    script = (
        'echo \'{"step": 3}\' > "$JOBFLEET_CHECKPOINT_FILE"; '
        'echo "bad input" > "$JOBFLEET_TERMINATION_LOG"; exit 3'
    )
    run = runner.start(["sh", "-c", script])
    result = runner.wait(run)
    assert result.failure is not None and result.failure.termination_message == "bad input"
    assert runner.files.checkpoint(run).read_text().strip() == '{"step": 3}'


def test_a_file_payload_is_read_with_the_jobs_rights(runner: Runner, base: Path) -> None:
    secret = base / "root-only.txt"
    secret.write_text("root's\n")
    os.chmod(secret, 0o600)
    run = runner.start(["cat", "root-only.txt"], payload_uri=f"file://{secret}")
    result = runner.wait(run)
    assert result.failure is not None and result.failure.condition == "START_ERROR"
    assert "nobody cannot read" in str(result.failure.message), result.failure
    assert not (runner.files.work_dir(run) / "root-only.txt").exists()
    shared = base / "shared.txt"
    shared.write_text("for all\n")
    os.chmod(shared, 0o644)
    ok = runner.start(["cat", "shared.txt"], payload_uri=f"file://{shared}")
    assert runner.wait(ok).outcome == "succeeded" and runner.log(ok) == "for all\n"
    assert (runner.files.work_dir(ok) / "shared.txt").stat().st_uid == 65534


def test_a_data_dir_the_user_cannot_reach_is_refused(tmp_path: Path) -> None:
    user = runas.resolve("nobody")
    assert user is not None
    with pytest.raises(Exception, match="cannot pass through"):
        runas.prepare_data_dir(tmp_path / "data", user)  # /tmp/pytest-of-root is 0700
    assert runas.resolve("root") is None
