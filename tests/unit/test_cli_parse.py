"""CLI parsing without a server: spec building, -f YAML, profile resolution, click wiring."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from jobfleet.cli.main import CliState, cli
from jobfleet.cli.specs import (
    batches,
    build_spec,
    load_specs,
    merge_defaults,
    parse_pairs,
    validate_specs,
)
from jobfleet.client import Client, load_profile, profile_path, save_profile
from jobfleet.client.profile import resolve
from jobfleet.errors import ConfigError, InvalidInput


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.delenv("JOBFLEET_SERVER", raising=False)
    monkeypatch.delenv("JOBFLEET_TOKEN", raising=False)
    return config


# -- profile resolution ------------------------------------------------------------------------


def test_profile_path_follows_xdg(tmp_path: Path) -> None:
    assert profile_path() == tmp_path / "config" / "jobfleet" / "profile.json"


def test_profile_path_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert profile_path() == tmp_path / ".config" / "jobfleet" / "profile.json"


def test_save_profile_is_private_and_loads_back() -> None:
    path = save_profile("http://10.0.0.1:8360", "secret")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_profile() == {"server": "http://10.0.0.1:8360", "token": "secret"}


def test_no_profile_is_empty() -> None:
    assert load_profile() == {}


def test_corrupt_profile_is_a_config_error() -> None:
    profile_path().parent.mkdir(parents=True)
    profile_path().write_text("{not json")
    with pytest.raises(ConfigError, match="profile"):
        load_profile()


def test_default_server_without_anything() -> None:
    assert resolve() == ("http://127.0.0.1:8360", None)


def test_profile_then_env_then_explicit(monkeypatch: pytest.MonkeyPatch) -> None:
    save_profile("http://profile:1", "ptok")
    assert resolve() == ("http://profile:1", "ptok")
    monkeypatch.setenv("JOBFLEET_SERVER", "http://env:2/")
    monkeypatch.setenv("JOBFLEET_TOKEN", "etok")
    assert resolve() == ("http://env:2", "etok")
    assert resolve("http://arg:3", "atok") == ("http://arg:3", "atok")


def test_each_field_resolves_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    save_profile("http://profile:1", "ptok")
    monkeypatch.setenv("JOBFLEET_SERVER", "http://env:2")
    assert resolve() == ("http://env:2", "ptok")
    assert resolve(None, "atok") == ("http://env:2", "atok")


def test_server_without_scheme_gets_http() -> None:
    assert resolve("localhost:9000")[0] == "http://localhost:9000"


def test_client_uses_the_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBFLEET_TOKEN", "etok")
    with Client() as client:
        assert (client.server, client.token) == ("http://127.0.0.1:8360", "etok")


# -- submit flags → spec -----------------------------------------------------------------------


def test_build_spec_minimal() -> None:
    assert build_spec(["python", "train.py"]) == {"command": ["python", "train.py"]}


def test_build_spec_every_flag() -> None:
    spec = build_spec(
        ["train", "--lr", "3"],
        queue="ml",
        job_set="sweep",
        cpu=1.5,
        memory="2Gi",
        gpu=1,
        priority=-5,
        priority_class="urgent",
        timeout="30m",
        retries=3,
        after=["a1", "b2"],
        client_id="k1",
        network="none",
        labels={"team": "vision"},
        env={"SEED": "1"},
    )
    assert spec == {
        "command": ["train", "--lr", "3"],
        "queue": "ml",
        "job_set": "sweep",
        "resources": {"cpu": 1.5, "memory": "2Gi", "gpu": 1},
        "priority": -5,
        "priority_class": "urgent",
        "timeout": "30m",
        "retry": {"max_retries": 3},
        "depends_on": [{"job_id": "a1", "after": "success"}, {"job_id": "b2", "after": "success"}],
        "client_id": "k1",
        "network": "none",
        "labels": {"team": "vision"},
        "env": {"SEED": "1"},
    }


def test_build_spec_zero_values_are_kept() -> None:
    spec = build_spec(["x"], gpu=0, priority=0, retries=0)
    assert spec["resources"] == {"gpu": 0}
    assert spec["priority"] == 0
    assert spec["retry"] == {"max_retries": 0}


def test_build_spec_shell_joins_into_one_string() -> None:
    assert build_spec(["echo $HOME", "|", "wc"], shell=True) == {
        "command": "echo $HOME | wc",
        "shell": True,
    }


def test_parse_pairs() -> None:
    assert parse_pairs(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ValueError, match="'nope' is not of the form KEY=VALUE"):
        parse_pairs(["nope"], "label")
    with pytest.raises(ValueError):
        parse_pairs(["=v"])


# -- -f jobs.yaml ------------------------------------------------------------------------------


def test_load_specs_list_and_jobs_key() -> None:
    as_list = "- command: [echo, a]\n- command: [echo, b]\n"
    as_map = "jobs:\n  - command: [echo, a]\n  - command: [echo, b]\n"
    expected = [{"command": ["echo", "a"]}, {"command": ["echo", "b"]}]
    assert load_specs(as_list) == load_specs(as_map) == expected


def test_load_specs_single_spec() -> None:
    assert load_specs("command: [true]\nqueue: ml\n") == [{"command": [True], "queue": "ml"}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no jobs"),
        ("jobs: []", "holds no jobs"),
        ("- [echo]\n", r"jobs\[0\] is not a mapping"),
        ("just text", "expected a list of job specs"),
        ("jobs: [{command: [a]}]\nextra: 1\n", "unexpected top-level key"),
        ("- command: [a\n", "not valid YAML"),
    ],
)
def test_load_specs_refuses(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        load_specs(text, "jobs.yaml")


def test_flags_are_defaults_for_file_specs() -> None:
    defaults = build_spec(None, queue="ml", cpu=2, memory="1Gi", labels={"team": "a", "x": "1"})
    spec = {"command": ["a"], "queue": "cpu", "resources": {"cpu": 4}, "labels": {"team": "b"}}
    assert merge_defaults(spec, defaults) == {
        "command": ["a"],
        "queue": "cpu",
        "resources": {"cpu": 4, "memory": "1Gi"},
        "labels": {"team": "b", "x": "1"},
    }


def test_validate_specs_names_every_bad_job_and_field() -> None:
    specs = [{"command": ["ok"]}, {"command": ["x"], "resources": {"cpu": -1}}, {"bogus": 1}]
    with pytest.raises(InvalidInput) as info:
        validate_specs(specs, "jobs.yaml")
    message = str(info.value)
    assert message.startswith("jobs.yaml: 2 of 3 jobs are invalid; nothing was submitted:")
    assert "jobs[1].resources.cpu:" in message
    assert "jobs[2].bogus:" in message
    assert "jobs[2].command:" in message


def test_batches_of_at_most_1000() -> None:
    specs = [{"command": [str(i)]} for i in range(2500)]
    assert [len(b) for b in batches(specs)] == [1000, 1000, 500]


# -- the click wiring, with a stand-in server ---------------------------------------------------


class FakeServer:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "POST" and request.url.path == "/v1/jobs":
            body = json.loads(request.content)
            if "jobs" in body:
                jobs = [
                    self.job(f"j{len(self.requests)}-{i}", s) for i, s in enumerate(body["jobs"])
                ]
                return httpx.Response(201, json={"jobs": jobs})
            return httpx.Response(201, json=self.job("j1", body))
        return httpx.Response(
            404, json={"detail": "nope"}, headers={"content-type": "application/problem+json"}
        )

    @staticmethod
    def job(job_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"id": job_id, "state": "QUEUED", "spec": spec, "attempt": 0}

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) for r in self.requests]


def run(args: list[str], server: FakeServer | None = None, stdin: str | None = None) -> Any:
    transport = httpx.MockTransport(server or FakeServer())
    state = CliState(transport=transport)
    return CliRunner().invoke(cli, args, obj=state, input=stdin, catch_exceptions=False)


def test_submit_prints_the_id_and_sends_the_spec() -> None:
    server = FakeServer()
    result = run(
        [
            "submit",
            "--cpu",
            "2",
            "--priority",
            "-3",
            "--label",
            "a=b",
            "--",
            "python",
            "-c",
            "print(1)",
        ],
        server,
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "j1\n"
    assert server.bodies() == [
        {
            "command": ["python", "-c", "print(1)"],
            "resources": {"cpu": 2.0},
            "priority": -3,
            "labels": {"a": "b"},
        }
    ]


def test_submit_without_dashes_stops_options_at_the_command() -> None:
    server = FakeServer()
    result = run(["submit", "--queue", "ml", "train.py", "--queue", "x"], server)
    assert result.exit_code == 0, result.output
    assert server.bodies() == [{"command": ["train.py", "--queue", "x"], "queue": "ml"}]


def test_submit_json_prints_the_job() -> None:
    result = run(["submit", "-o", "json", "--", "true"])
    assert json.loads(result.stdout)["id"] == "j1"


def test_submit_bad_label_is_a_usage_error() -> None:
    result = run(["submit", "--label", "oops", "--", "true"])
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.stderr


def test_submit_needs_a_command() -> None:
    result = run(["submit", "--cpu", "1"])
    assert result.exit_code == 2
    assert "nothing to run" in result.stderr


def test_submit_file_with_flags_as_defaults(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("jobs:\n" + "".join(f"  - command: [echo, '{i}']\n" for i in range(1500)))
    server = FakeServer()
    result = run(["submit", "-f", str(jobs), "--queue", "ml", "--job-set", "s1"], server)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1500
    bodies = server.bodies()
    assert [len(b["jobs"]) for b in bodies] == [1000, 500]
    assert bodies[1]["jobs"][0] == {"command": ["echo", "1000"], "queue": "ml", "job_set": "s1"}


def test_submit_file_from_stdin_as_json() -> None:
    result = run(["submit", "-f", "-", "-o", "json"], stdin="- command: [a]\n- command: [b]\n")
    assert result.exit_code == 0, result.output
    assert [j["spec"]["command"] for j in json.loads(result.stdout)] == [["a"], ["b"]]


def test_submit_invalid_file_submits_nothing(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("- command: [a]\n- command: [b]\n  resources: {gpu: -1}\n")
    server = FakeServer()
    result = run(["submit", "-f", str(jobs)], server)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {jobs}: 1 of 2 jobs are invalid")
    assert "jobs[1].resources.gpu" in result.stderr
    assert server.requests == []


def test_submit_file_and_command_conflict(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("- command: [a]\n")
    result = run(["submit", "-f", str(jobs), "--", "echo"])
    assert result.exit_code == 2
    assert "not both" in result.stderr


def test_expected_errors_are_one_line_and_exit_2() -> None:
    result = run(["get", "nope"])
    assert result.exit_code == 2
    assert result.stderr == "error: nope\n"


def test_cancel_needs_a_job_or_a_job_set() -> None:
    result = run(["cancel"])
    assert result.exit_code == 2
    assert "--job-set" in result.stderr


def test_auth_token_from_profile_and_data_dir(tmp_path: Path) -> None:
    save_profile("http://127.0.0.1:8360", "ptok")
    assert run(["auth", "token"]).stdout == "ptok\n"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "admin-token").write_text("admintok\n")
    assert run(["auth", "token", "--data-dir", str(tmp_path / "data")]).stdout == "admintok\n"


def test_auth_token_explains_when_there_is_none() -> None:
    result = run(["auth", "token"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no token")
    assert "jobfleet up" in result.stderr


def test_array_flag_is_size_and_optional_max_parallel() -> None:
    from jobfleet.cli.specs import build_spec, parse_array

    assert parse_array("100") == {"size": 100}
    assert parse_array("100%10") == {"size": 100, "max_parallel": 10}
    assert build_spec(["true"], array="4%2", not_before="10m") == {
        "command": ["true"],
        "array": {"size": 4, "max_parallel": 2},
        "not_before": "10m",
    }
    with pytest.raises(ValueError, match="N%M"):
        parse_array("ten")
