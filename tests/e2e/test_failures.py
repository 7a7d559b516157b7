"""Failures and retries through a real `jobfleet up --config` (its worker in a child process,
applying reports with a store of its own): the configured categories classify failures there
too, the retry policy runs the job as often as it says, a retried attempt reads the failed
one's checkpoint, and `jobfleet get` / `jobfleet history` show what went wrong."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import BACKENDS, Fleet, finish, free_port, make_env, new_fleet, run_cli
from tests.e2e.test_cli import ok

pytestmark = pytest.mark.e2e

CONFIG = """
error_categories:
  - name: bad-input
    rules:
      - exit_codes: {operator: In, values: [2]}
queues:
  - name: flaky
    retry:
      max_retries: 3
      backoff: {initial: 0}
      rules:
        - {on_categories: [bad-input], action: fail}
"""
# Attempt 1 saves a checkpoint and fails (exit 1: retried); the later ones fail (exit 3) after
# checking that they got the checkpoint; so the job runs exactly 4 times.
SCRIPT = (
    'if [ "$JOBFLEET_ATTEMPT" = 1 ]; then echo \'{"epoch": 3}\' > "$JOBFLEET_CHECKPOINT_FILE";'
    ' exit 1; fi; [ "$JOBFLEET_CHECKPOINT" = \'{"epoch": 3}\' ] || exit 99; exit 3'
)


@pytest.fixture(scope="module", params=BACKENDS)
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp(f"failures-{request.param}")
    config = root / "jobfleet.yaml"
    config.write_text(CONFIG)
    f = new_fleet(root / "fleet", request.param, request, config=config)
    try:
        yield f.start()
    finally:
        finish(f)


def submit(fleet: Fleet, *argv: str) -> dict[str, object]:
    done = fleet.cli("submit", "--wait", "-o", "json", "--queue", "flaky", "--", *argv)
    job: dict[str, object] = json.loads(done.stdout)
    return job


def test_a_category_from_the_config_ends_the_retries_at_once(fleet: Fleet) -> None:
    job = submit(fleet, "sh", "-c", "echo 'bad row 7' >&2; exit 2")
    assert job["state"] == "FAILED"
    failure = job["failure"]
    assert isinstance(failure, dict)
    assert failure["categories"] == ["bad-input"]
    assert failure["termination_message"] == "bad row 7"
    assert len(job["runs"]) == 1  # type: ignore[arg-type]
    shown = ok(fleet.cli("get", str(job["id"])))
    assert "EXIT_NONZERO (exit 2)" in shown and "categories: bad-input" in shown


def test_the_queue_policy_runs_the_job_four_times_and_the_checkpoint_carries_over(
    fleet: Fleet,
) -> None:
    job = submit(fleet, "sh", "-c", SCRIPT)
    assert job["state"] == "FAILED"
    runs = job["runs"]
    assert isinstance(runs, list)
    assert [r["failure"]["exit_code"] for r in runs] == [1, 3, 3, 3]  # 99: no checkpoint
    history = ok(fleet.cli("history", str(job["id"])))
    assert "Failures, newest first" in history
    for run in runs:
        assert run["id"] in history
    with fleet.client() as client:
        assert [e["attempt"] for e in client.iter_errors(str(job["id"]))] == [4, 3, 2, 1]
        [saved] = client.checkpoints(str(job["id"]))
        assert saved["value"] == {"epoch": 3} and saved["attempt"] == 1


def test_up_refuses_a_bad_category_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.replace("values: [2]", "values: []"))
    done = run_cli(
        make_env(tmp_path),
        *(
            "up",
            "--config",
            str(bad),
            "--data-dir",
            str(tmp_path / "d"),
            "--port",
            str(free_port()),
        ),
        timeout=20,
    )
    assert done.returncode != 0
    assert "error_categories[0].rules[0].exit_codes.values" in done.stderr, done.stderr
