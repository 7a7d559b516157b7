"""What the CLI shows people: `submit --wait` shows what the job printed, `get` tells a current
failure from an earlier attempt's and says where the last words come from, memory and
durations read as people write them, help has text for every option, and validation errors
read like sentences."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner
from rich.console import Console

from jobfleet.cli import output
from jobfleet.cli.main import CliState, cli
from jobfleet.cli.specs import validate_specs
from jobfleet.errors import InvalidInput, plain_message

NOW = datetime(2026, 1, 1, tzinfo=UTC)
FAILURE = {
    "condition": "EXIT_NONZERO",
    "exit_code": 1,
    "termination_message": "Traceback ...\nValueError: bad row",
    "termination_source": "stderr",
    "categories": [],
    "retryable": True,
    "message": "the process exited with code 1",
}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("JOBFLEET_SERVER", raising=False)
    monkeypatch.delenv("JOBFLEET_TOKEN", raising=False)


def render(job: dict[str, Any]) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(output.job_view(job, NOW))
    return console.export_text()


def job(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "J1",
        "state": "SUCCEEDED",
        "queue": "default",
        "job_set": "default",
        "attempt": 1,
        "spec": {"command": ["echo", "hello"], "resources": {"cpu": 1, "memory": 256 * 2**20}},
        "runs": [{"id": "J1-1", "attempt": 1, "state": "SUCCEEDED", "exit_code": 0}],
        "actions": [],
    }
    return {**base, **fields}


def test_a_running_job_shows_the_earlier_attempts_failure_as_earlier() -> None:
    runs = [
        {"id": "J1-1", "attempt": 1, "state": "FAILED", "exit_code": 1, "failure": FAILURE},
        {"id": "J1-2", "attempt": 2, "state": "RUNNING"},
    ]
    text = render(job(state="RUNNING", attempt=2, runs=runs, failure=FAILURE))
    assert "Last failure" in text and "(attempt 1; the job was retried)" in text
    assert "\nFailure " not in text


def test_a_failed_job_shows_its_failure_and_labels_a_stderr_tail_as_such() -> None:
    runs = [{"id": "J1-1", "attempt": 1, "state": "FAILED", "exit_code": 1, "failure": FAILURE}]
    text = render(job(state="FAILED", runs=runs, failure=FAILURE))
    assert "Failure " in text and "Last failure" not in text
    assert "Stderr (last lines)" in text and "ValueError: bad row" in text
    assert "Termination message" not in text
    own = {**FAILURE, "termination_source": "termination_log"}
    runs[0]["failure"] = own
    assert "Termination message" in render(job(state="FAILED", runs=runs, failure=own))


def test_get_shows_timeout_labels_and_memory_as_people_write_it() -> None:
    spec = {
        "command": ["train"],
        "resources": {"cpu": 2, "memory": 24683792 * 1024, "gpu": 0},
        "timeout": 5400.0,
        "working_dir": "/srv/project",
    }
    text = render(job(spec=spec, labels={"team": "ml", "sweep": "lr"}))
    assert "memory 23.5Gi" in text and "Ki" not in text
    assert "Timeout" in text and "1h30m" in text
    assert "team=ml, sweep=lr" in text
    assert "/srv/project" in text
    assert re.search(r"Timeout +none", render(job()))


def test_a_cancelled_job_shows_no_cancel_request_line() -> None:
    text = render(job(state="CANCELLED", cancel_requested=True))
    assert "Cancel requested" not in text and "Requested" not in text
    running = render(job(state="RUNNING", cancel_requested=True))
    assert "cancel (its worker is stopping the run)" in running


class Server:
    """Answers a submit with a job that has ended, and its stdout."""

    def __init__(self, stdout: str) -> None:
        self.stdout = stdout
        self.bodies: list[Any] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.bodies.append(json.loads(request.content))
            return httpx.Response(201, json=job(state="QUEUED", runs=[]))
        if request.url.path.endswith("/logs"):
            assert request.url.params["stream"] == "stdout"
            return httpx.Response(200, text=self.stdout)
        return httpx.Response(200, json=job())


def run(args: list[str], server: Server) -> Any:
    state = CliState(transport=httpx.MockTransport(server))
    return CliRunner().invoke(cli, args, obj=state, catch_exceptions=False)


def test_submit_wait_shows_what_the_job_printed() -> None:
    result = run(["submit", "--wait", "--", "echo", "hello"], Server("hello\n"))
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip().endswith("Output (stdout)\nhello")
    assert "SUCCEEDED" in result.stdout


def test_submit_wait_cuts_long_output_and_says_where_the_rest_is() -> None:
    lines = "".join(f"line {i}\n" for i in range(200))
    result = run(["submit", "--wait", "--", "seq", "200"], Server(lines))
    assert "last 50 of 200 lines (all: jobfleet logs J1)" in result.stdout
    assert result.stdout.rstrip().endswith("line 199") and "line 149\n" not in result.stdout
    quiet = run(["submit", "--wait", "--", "true"], Server(""))
    assert "no output on stdout" in quiet.stdout


def test_submit_wait_whose_log_cannot_be_read_still_exits_by_the_jobs_end() -> None:
    class NoLogs(Server):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/logs"):
                return httpx.Response(503, text="down")
            return super().__call__(request)

    result = run(["submit", "--wait", "--", "true"], NoLogs(""))
    assert result.exit_code == 0, result.output
    assert "its output: jobfleet logs J1" in result.stdout


def test_submit_working_dir_is_sent_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = Server("")
    monkeypatch.chdir(tmp_path)
    run(["submit", "--working-dir", "proj", "--", "make"], server)
    assert server.bodies == [{"command": ["make"], "working_dir": str(tmp_path / "proj")}]


def command_options(name: str) -> list[click.Option]:
    command = cli.commands[name]
    return [p for p in command.params if isinstance(p, click.Option)]


@pytest.mark.parametrize("name", ["list", "submit", "get", "cancel", "events", "logs"])
def test_every_option_has_help_text(name: str) -> None:
    missing = [p.name for p in command_options(name) if not p.help]
    assert missing == []


def test_priority_class_help_is_current() -> None:
    (option,) = [p for p in command_options("submit") if p.name == "priority_class"]
    assert option.help is not None and "not built" not in option.help
    assert "preempt" in option.help


@pytest.mark.parametrize(
    ("pydantic", "plain"),
    [
        ("Input should be greater than 0", "must be greater than 0"),
        ("Value error, malformed memory quantity '5Q'", "malformed memory quantity '5Q'"),
        ("Field required", "is required"),
        ("Extra inputs are not permitted", "unknown field"),
        ("String should have at most 128 characters", "must have at most 128 characters"),
        ("command needs at least a program name", "command needs at least a program name"),
    ],
)
def test_validation_messages_read_like_sentences(pydantic: str, plain: str) -> None:
    assert plain_message(pydantic) == plain


def test_a_bad_spec_names_the_field_in_plain_words() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_specs([{"command": ["x"], "resources": {"cpu": 0, "memory": "5Q"}}], "jobs.yaml")
    text = str(info.value)
    assert "jobs[0].resources.cpu: must be greater than 0" in text
    assert "Value error" not in text and "Input should" not in text
    name = plain_message("String should match pattern '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$'")
    assert name.startswith("must be a name: letters, digits")
