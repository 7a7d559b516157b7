"""A run's output and files: timestamped, live, bounded logs; payloads in; outputs listed."""

from __future__ import annotations

import functools
import io
import re
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.integration.isolationkit import Runner

STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (.*)$")


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    r = Runner(tmp_path)
    yield r
    r.close()


# -- logs -------------------------------------------------------------------------------------


def test_every_stored_line_has_a_timestamp_and_a_last_partial_line_is_kept(
    runner: Runner,
) -> None:
    run = runner.start(["sh", "-c", "echo one; echo two >&2; printf 'no newline'"])
    assert runner.wait(run).outcome == "succeeded"
    out = runner.log(run, raw=True).splitlines()
    assert [STAMPED.match(line).group(1) for line in out] == ["one", "no newline"]  # type: ignore[union-attr]
    assert runner.log(run) == "one\nno newline\n"
    assert runner.log(run, "stderr") == "two\n"


def test_a_silent_stream_makes_no_log_file_and_reads_as_empty(runner: Runner) -> None:
    """Log files are made at a stream's first output: a run that prints nothing costs none."""
    run = runner.start(["sh", "-c", "echo only-err >&2"])
    assert runner.wait(run).outcome == "succeeded"
    assert not runner.files.log(run, "stdout").exists()
    assert runner.log(run) == ""
    assert runner.log(run, "stderr") == "only-err\n"


def test_a_line_is_in_the_log_within_a_second_while_the_job_runs(
    runner: Runner, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    run = runner.start(["sh", "-c", f"echo hello; while [ ! -e {gate} ]; do sleep 0.05; done"])
    wait_for(lambda: "hello" in runner.log(run), timeout=1.0, what="the line in the log")
    assert run in runner.executor.running()
    gate.touch()
    assert runner.wait(run).outcome == "succeeded"


def test_the_log_is_bounded_and_says_how_much_it_dropped(tmp_path: Path) -> None:
    runner = Runner(tmp_path, log_limit=4096)
    try:
        line = "x" * 99  # 100 bytes with its newline; 1,000 lines = 100,000 bytes
        run = runner.start(["sh", "-c", f"for i in $(seq 1000); do echo {line}; done"])
        assert runner.wait(run).outcome == "succeeded"
        text = runner.log(run)
        kept = text.count(line + "\n")
        assert kept == 28  # 128 bytes each on disk (with the timestamp); room kept for notes
        assert "[jobfleet] log limit of 4096 bytes reached: further output is dropped" in text
        assert f"[jobfleet] {100_000 - kept * 100} bytes of output were dropped" in text
        assert runner.files.log(run, "stdout").stat().st_size <= 4096
    finally:
        runner.close()


def test_the_log_limit_bounds_the_bytes_on_disk_not_the_jobs_bytes(tmp_path: Path) -> None:
    """`yes | head -c N`: two-byte lines cost 30 bytes each on disk with their timestamps;
    the limit bounds what is written (both streams, notes included), not what the job wrote."""
    runner = Runner(tmp_path, log_limit=8192)
    try:
        script = "yes | head -c 200000; yes e | head -c 200000 >&2"
        run = runner.start(["sh", "-c", script])
        assert runner.wait(run).outcome == "succeeded"
        sizes = [runner.files.log(run, s).stat().st_size for s in ("stdout", "stderr")]
        assert sum(sizes) <= 8192, sizes
        assert "bytes of output were dropped" in runner.log(run, "stderr")
    finally:
        runner.close()


def test_a_relative_data_dir_gives_jobs_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--data-dir rel`: the job runs in its own working dir, so the paths it is given must
    not be relative to the worker's."""
    monkeypatch.chdir(tmp_path)
    runner = Runner(Path("."))  # RunFiles(Path("data")): relative
    try:
        script = (
            'printenv JOBFLEET_TERMINATION_LOG; echo "it broke" > "$JOBFLEET_TERMINATION_LOG"; '
            "exit 3"
        )
        run = runner.start(["sh", "-c", script])
        result = runner.wait(run)
        assert runner.log(run).startswith(str(tmp_path / "data")), runner.log(run)
        assert result.failure is not None
        assert result.failure.termination_message == "it broke"
    finally:
        runner.close()


def test_one_pump_thread_serves_every_run(runner: Runner, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    runs = [
        runner.start(["sh", "-c", f"echo {i}; while [ ! -e {gate} ]; do sleep 0.05; done"])
        for i in range(5)
    ]
    wait_for(lambda: all(runner.log(r) for r in runs), what="every run to print")
    names = [t.name for t in threading.enumerate()]
    assert names.count("jobfleet-logs") == 1
    gate.touch()
    assert [runner.log(r) for r in runs] == [f"{i}\n" for i in range(5)]
    for r in runs:
        runner.wait(r)


# -- payloads ---------------------------------------------------------------------------------


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _tarball(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_a_file_payload_is_in_the_working_dir_before_start(runner: Runner, tmp_path: Path) -> None:
    payload = tmp_path / "input.txt"
    payload.write_text("from the payload\n")
    run = runner.start(["cat", "input.txt"], payload_uri=payload.as_uri())
    assert runner.wait(run).outcome == "succeeded", runner.log(run, "stderr")
    assert runner.log(run) == "from the payload\n"


def test_an_http_archive_payload_is_unpacked_into_the_working_dir(
    runner: Runner, http_dir: tuple[Path, str]
) -> None:
    root, url = http_dir
    (root / "code.tar.gz").write_bytes(_tarball({"pkg/run.sh": "echo unpacked $(pwd)\n"}))
    run = runner.start(["sh", "pkg/run.sh"], payload_uri=f"{url}/code.tar.gz")
    assert runner.wait(run).outcome == "succeeded", runner.log(run, "stderr")
    assert runner.log(run) == f"unpacked {runner.files.work_dir(run)}\n"
    assert not (runner.files.work_dir(run) / "code.tar.gz").exists()


def test_a_failed_fetch_is_a_start_error_with_the_reason(
    runner: Runner, http_dir: tuple[Path, str], tmp_path: Path
) -> None:
    _, url = http_dir
    missing = runner.wait(runner.start(["true"], payload_uri=f"{url}/nope.tar.gz"))
    assert missing.failure is not None and missing.failure.condition == "START_ERROR"
    assert "HTTP 404" in (missing.failure.message or "")
    gone = runner.wait(runner.start(["true"], payload_uri=(tmp_path / "absent").as_uri()))
    assert gone.failure is not None and gone.failure.condition == "START_ERROR"
    assert "No such file" in (gone.failure.message or "")


def test_an_archive_that_escapes_the_working_dir_is_refused(runner: Runner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("../../escaped.txt", "no")
    done = runner.wait(runner.start(["true"], payload_uri=bad.as_uri()))
    assert done.failure is not None and done.failure.condition == "START_ERROR"
    assert "outside the working dir" in (done.failure.message or "")
    assert not (tmp_path / "escaped.txt").exists()


# -- outputs ----------------------------------------------------------------------------------


def test_outputs_are_listed_with_their_sizes_after_success(runner: Runner) -> None:
    script = "mkdir out; printf abc > out/a.txt; printf 12345 > out/b.txt; echo x > skip.log"
    run = runner.start(["sh", "-c", script], outputs=["out/*.txt", "missing.bin"])
    done = runner.wait(run)
    assert done.outcome == "succeeded"
    assert done.outputs == [{"path": "out/a.txt", "size": 3}, {"path": "out/b.txt", "size": 5}]
    failed = runner.wait(runner.start(["sh", "-c", "echo x > a.txt; exit 1"], outputs=["a.txt"]))
    assert failed.outputs is None
