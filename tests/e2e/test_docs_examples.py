"""The docs run: every shell and Python example of README.md and docs/*.md, and the README's
tour, against a real `jobfleet up` (tests/docs_examples.py says how blocks are read and marked).

Each page runs in a fresh directory of its own, its shell blocks in one bash script and its
Python blocks in one interpreter, with `.venv/bin` on the PATH and the profile `up` saved (so,
as in the README, no flags are needed); the docs' server address, 127.0.0.1:8360, is replaced by
the test server's. A page fails when a command fails, and when a job it submitted could not even
start (START_ERROR: a command or working directory that is not there is a broken example).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.docs_examples import PAGES, ROOT, Block, blocks, python_script, runnable, shell_script
from tests.e2e.conftest import Fleet, finish, new_fleet
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

DOCS_SERVER = "127.0.0.1:8360"
PAGE_TIMEOUT = 90.0  # one page under a loaded CI host; the whole module takes ~40-90 s
SETTLE_TIMEOUT = 15.0
UNSETTLED = {"WAITING", "QUEUED", "SCHEDULED", "LEASED"}
MAX_SKIPPED = 8


@pytest.fixture(scope="module")
def docs_fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    fleet = new_fleet(tmp_path_factory.mktemp("docs-up"), "sqlite", request)
    try:
        yield fleet.start()
    finally:
        finish(fleet)


def run_examples(found: list[Block], fleet: Fleet, workdir: Path) -> list[str]:
    """Run a page's examples in `workdir`; the problems found (empty when it all worked)."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(fleet.env)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    here = f"127.0.0.1:{fleet.port}"
    problems: list[str] = []
    for block in found:
        if block.kind == "file" and block.file_name:
            (workdir / block.file_name).write_text(block.code.replace(DOCS_SERVER, here))
    programs = [
        (["bash", "-c", shell_script(found)], any(b.kind == "shell" for b in found)),
        ([sys.executable, "-c", python_script(found)], any(b.kind == "python" for b in found)),
    ]
    for argv, wanted in programs:
        if not wanted:
            continue
        argv = [*argv[:-1], argv[-1].replace(DOCS_SERVER, here)]
        try:
            done = subprocess.run(
                argv,
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=PAGE_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            problems.append(f"{argv[0]} examples did not finish in {PAGE_TIMEOUT:.0f} s: {exc}")
            continue
        if done.returncode != 0:
            markers = [ln for ln in done.stderr.splitlines() if ln.startswith(">>> docs example")]
            where = markers[-1].removeprefix(">>> docs example ") if markers else "?"
            problems.append(
                f"the example at {where} failed (exit {done.returncode})\n"
                f"--- stdout (end):\n{done.stdout[-3000:]}\n"
                f"--- stderr (end):\n{done.stderr[-3000:]}"
            )
    return problems


def jobs_that_could_not_start(fleet: Fleet, before: set[str]) -> list[str]:
    """The new jobs that failed with START_ERROR, once the new jobs have left the queues."""
    client = fleet.client()
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        new = [j for j in client.iter_jobs() if j["id"] not in before]
        if not any(j["state"] in UNSETTLED for j in new) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return [
        f"job {j['id']} ({j['spec'].get('command')}): {(j.get('failure') or {}).get('message')}"
        for j in new
        if (j.get("failure") or {}).get("condition") == "START_ERROR"
    ]


def job_ids(fleet: Fleet) -> set[str]:
    return {j["id"] for j in fleet.client().iter_jobs()}


PAGES_WITH_EXAMPLES = [p for p in PAGES if runnable(p)]


@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=lambda p: p.name)
def test_the_examples_of_the_page_run(docs_fleet: Fleet, page: Path, tmp_path: Path) -> None:
    before = job_ids(docs_fleet)
    problems = run_examples(runnable(page), docs_fleet, tmp_path / "work")
    problems += jobs_that_could_not_start(docs_fleet, before)
    assert not problems, f"{page.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_the_readme_tour_is_among_them() -> None:
    readme = ROOT / "README.md"
    shell = [b for b in runnable(readme) if b.kind == "shell"]
    code = "".join(b.code for b in shell)
    for step in ("submit --wait", 'events "$ID" -f', "preempt", "cancel", "submit -f jobs.yaml"):
        assert step in code, step
    assert any(b.kind == "python" for b in runnable(readme))


def test_a_broken_example_fails(docs_fleet: Fleet, tmp_path: Path) -> None:
    page = ROOT / "docs" / "broken.md"
    text = (
        "Intro.\n\n```sh\njobfleet list >/dev/null\n```\n\n"
        "```sh\njobfleet get NOSUCHJOB\n```\n\n"
        "```python\nraise SystemExit('never reached: the shell failed first')\n```\n"
    )
    problems = run_examples(runnable(page, text), docs_fleet, tmp_path / "shell")
    assert len(problems) == 2
    assert "docs/broken.md:7" in problems[0] and "NOSUCHJOB" in problems[0]
    before = job_ids(docs_fleet)
    text = "```sh\njobfleet submit -- ./no-such-script.sh\n```\n"
    assert run_examples(runnable(page, text), docs_fleet, tmp_path / "start") == []
    [problem] = jobs_that_could_not_start(docs_fleet, before)
    assert "no-such-script.sh" in problem


def test_blocks_that_do_not_run_say_why_and_are_few() -> None:
    skipped: list[Any] = [
        b for p in PAGES for b in blocks(p) if b.skip is not None and b.kind != "prose"
    ]
    assert all(b.skip not in ("skipped", "no-run") for b in skipped), [b.where for b in skipped]
    assert len(skipped) <= MAX_SKIPPED, [(b.where, b.skip) for b in skipped]
    marked = blocks(
        ROOT / "x.md",
        "<!-- docs-test: skip: needs a cluster -->\n```sh\nfalse\n```\n"
        "```sh no-run: needs a GPU\nfalse\n```\n```python\nx = 1\n```\n",
    )
    assert [(b.lang, b.skip) for b in marked] == [
        ("sh", "needs a cluster"),
        ("sh", "needs a GPU"),
        ("python", None),
    ]


def test_up_logs_its_start_in_words(docs_fleet: Fleet) -> None:
    """The start-up lines a newcomer reads under the banner are sentences, not Python dicts."""

    def isolation_line() -> str | None:
        lines = docs_fleet.output().splitlines()
        return next((ln for ln in lines if " isolation: " in ln), None)

    line = wait_for(isolation_line, timeout=15, what="the worker's isolation line")
    assert "{" not in line and "': " not in line, line


def test_the_readme_shows_the_banner_up_prints(docs_fleet: Fleet) -> None:
    """The README's `jobfleet up` transcript, with this server's address, data directory and
    token in place of the README's, is what `up` printed."""
    [shown] = [
        b.code
        for b in blocks(ROOT / "README.md")
        if b.lang == "console" and b.code.startswith("$ .venv/bin/jobfleet up")
    ]
    data = "/home/you/.local/share/jobfleet"
    printed = docs_fleet.output()
    for line in shown.splitlines()[1:]:
        line = line.replace(f"http://{DOCS_SERVER}", docs_fleet.url)
        line = line.replace(data, str(docs_fleet.data_dir)).replace("jf_…", docs_fleet.token)
        assert line in printed, f"README.md says {line!r}; up printed:\n{printed}"
