"""`jobfleet up` itself: first-start token and profile, `--config`, and `jobfleet db upgrade`."""

from __future__ import annotations

import json
import re
import stat
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Fleet, finish, free_port, make_env, new_fleet, run_cli

pytestmark = pytest.mark.e2e


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_up_prints_the_admin_token_once_and_saves_a_private_profile(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """First start: the token is made, printed once, kept 0600; the profile is saved 0600.

    That a second start prints no token is checked by every restart test (test_restart.py).
    """
    config = tmp_path / "jobfleet.yaml"
    config.write_text("queues:\n  - {name: ml, weight: 2, max_running_jobs: 4}\n")
    fleet = new_fleet(tmp_path / "fleet", "sqlite", request, config=config)
    try:
        fleet.start()
        token = fleet.token
        assert re.fullmatch(r"\S{20,}", token), token
        first = fleet.output()
        assert "admin token (shown once" in first
        assert first.count(token) == 1, first
        assert mode(fleet.data_dir / "admin-token") == 0o600
        assert mode(fleet.profile) == 0o600
        assert json.loads(fleet.profile.read_text()) == {"server": fleet.url, "token": token}
        check_configured_queue(fleet)
        assert fleet.stop() == 0, fleet.output()
        assert fleet.token == token  # kept for the next start
    finally:
        finish(fleet)


def check_configured_queue(fleet: Fleet) -> None:
    """The queue `ml` of the config file exists: `submit --queue ml` runs a job in it."""
    done = fleet.cli("submit", "--queue", "ml", "--wait", "-o", "json", "--", "true")
    assert done.returncode == 0, done
    job = json.loads(done.stdout)
    assert (job["queue"], job["state"]) == ("ml", "SUCCEEDED")
    listed = fleet.cli("list", "--queue", "ml", "-o", "json")
    assert [j["id"] for j in json.loads(listed.stdout)] == [job["id"]]


BAD_CONFIGS = [
    pytest.param("queues: [{name: ml, weight: -1}]\n", "queues[0].weight", id="negative-weight"),
    pytest.param("queues: [{name: ml}]\nbogus_key: 1\n", "bogus_key", id="unknown-key"),
]


@pytest.mark.parametrize(("text", "where"), BAD_CONFIGS)
def test_up_refuses_a_bad_config_naming_the_path(tmp_path: Path, text: str, where: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    data = tmp_path / "data"
    began = time.monotonic()
    done = run_cli(
        make_env(tmp_path),
        *("up", "--config", str(bad), "--data-dir", str(data), "--port", str(free_port())),
        timeout=20,
    )
    took = time.monotonic() - began
    assert done.returncode != 0, done
    assert took < 10, f"refusing a bad config took {took:.1f}s"
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("error: "), done.stderr
    assert str(bad) in done.stderr, done.stderr
    assert where in done.stderr, done.stderr
    assert "jobfleet is up" not in done.stderr + done.stdout
    assert not (data / "admin-token").exists()


def test_db_upgrade_is_idempotent_and_prints_the_revision(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    env = make_env(tmp_path)
    first = run_cli(env, "db", "upgrade", "--database", url)
    assert (tmp_path / "fresh.db").exists()
    second = run_cli(env, "db", "upgrade", "--database", url)
    for done in (first, second):
        assert done.returncode == 0, done
        assert "Traceback" not in done.stderr, done.stderr
    match = re.search(r"revision (\S+)", first.stdout)
    assert match, first.stdout
    assert match.group(1) not in ("None", "none", "-"), first.stdout
    assert "sqlite" in first.stdout
    assert second.stdout == first.stdout
