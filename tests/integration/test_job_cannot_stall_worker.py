"""One job never stops or stalls its worker (issue 12, finding 2), defence in depth behind the
edge: whatever a job's spec or files hold, its run ends (START_ERROR if it could not start) and
its slot is freed, and the worker goes on with the next job.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jobfleet.models import JobSpec
from tests.integration.conftest import Api
from tests.integration.test_executor_failures import Harness


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    harness = Harness(tmp_path)
    yield harness  # type: ignore[misc]
    harness.executor.shutdown(timeout=5)


@pytest.mark.parametrize(
    "spec",
    [
        {"env": {"K": "v\x00x"}},
        {"working_dir": "/tmp/a\x00b"},
        {"resources": {"gpu": "many"}},
    ],
    ids=["NUL in env", "NUL in working_dir", "gpu not a number"],
)
def test_a_run_that_cannot_start_for_any_reason_is_a_start_error(
    h: Harness, spec: dict[str, object]
) -> None:
    a = h.assignment(["true"], **spec)
    f = h.executor.start(a)  # the old executor raised ValueError here: the worker loop died
    assert f is not None and f.failure is not None
    assert (f.outcome, f.failure.condition) == ("failed", "START_ERROR")
    assert "\x00" not in f.failure.message
    assert h.executor.running() == set()
    ok = h.run(h.assignment(["true"]))
    assert ok.outcome == "succeeded"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # PostgreSQL cannot hold a NUL
def test_a_stored_job_with_a_nul_in_its_env_ends_start_error_and_frees_its_slot(
    api: Api,
) -> None:
    defaults = JobSpec(command=["true"])
    spec = defaults.model_copy(update={"env": {"K": "v\x00x"}})
    job = str(api.store.submit_views([spec])[0]["id"])
    failed = api.wait_state(job, "FAILED")
    assert failed["failure"]["condition"] == "START_ERROR"  # type: ignore[index]
    assert failed["runs"][-1]["state"] != "LEASED"  # type: ignore[index]
    after = api.submit(command=["true"])
    api.wait_state(str(after["id"]), "SUCCEEDED")


def test_a_fifo_as_termination_log_does_not_hang_the_worker(api: Api) -> None:
    """The reaper read $JOBFLEET_TERMINATION_LOG with a blocking open: a FIFO hung it."""
    script = 'mkfifo "$JOBFLEET_TERMINATION_LOG" && echo why >&2 && exit 3'
    job = str(api.submit(command=["sh", "-c", script])["id"])
    failed = api.wait_state(job, "FAILED")
    assert failed["failure"]["exit_code"] == 3  # type: ignore[index]
    assert "why" in failed["failure"]["termination_message"]  # type: ignore[index]
    after = api.submit(command=["true"])
    api.wait_state(str(after["id"]), "SUCCEEDED")


def test_a_fifo_as_checkpoint_file_does_not_hang_the_worker(api: Api) -> None:
    """The worker loop read $JOBFLEET_CHECKPOINT_FILE with a blocking open: a FIFO hung it."""
    job = str(api.submit(command=["sh", "-c", 'mkfifo "$JOBFLEET_CHECKPOINT_FILE"'])["id"])
    api.wait_state(job, "SUCCEEDED")
    after = api.submit(command=["true"])
    api.wait_state(str(after["id"]), "SUCCEEDED")


def test_a_deeply_nested_checkpoint_is_skipped_not_fatal(api: Api) -> None:
    deep = "[" * 30_000 + "]" * 30_000  # within the 64 KiB limit: read, and too deep to parse
    script = f"printf '%s' '{deep}' > \"$JOBFLEET_CHECKPOINT_FILE\""
    job = str(api.submit(command=["sh", "-c", script])["id"])
    api.wait_state(job, "SUCCEEDED")


def test_a_nul_and_bad_utf8_in_stderr_end_in_a_stored_failure(api: Api) -> None:
    """PostgreSQL holds no NUL in text or JSON: the failure's texts are made storable."""
    script = r"printf 'a\000b\377c\n' >&2; exit 1"
    job = str(api.submit(command=["sh", "-c", script])["id"])
    failed = api.wait_state(job, "FAILED")
    message = failed["failure"]["termination_message"]  # type: ignore[index]
    assert message == "a\ufffdb\ufffdc"


def test_an_output_file_name_that_is_not_utf8_is_listed_replaced(api: Api) -> None:
    script = "touch \"$(printf 'out\\377')\""
    job = str(api.submit(command=["sh", "-c", script], outputs=["out*"])["id"])
    done = api.wait_state(job, "SUCCEEDED", "FAILED")
    assert done["state"] == "SUCCEEDED", done
    assert done["runs"][-1]["outputs"] == [{"path": "out\ufffd", "size": 0}]  # type: ignore[index]
