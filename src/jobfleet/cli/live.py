"""Long-running output: the progress bar of a batch submit, and logs followed live."""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from jobfleet.cli.specs import batches
from jobfleet.client.sync import JsonClient as Client
from jobfleet.errors import JobfleetError

Json = dict[str, Any]


def submit_in_batches(client: Client, specs: list[Json], jobs: list[Json]) -> None:
    """Submit `specs` in batches, appending the jobs to `jobs`, with a progress bar on stderr."""
    err = Console(stderr=True)
    columns = (TextColumn("submitting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(
        *columns,
        console=err,
        disable=not err.is_terminal,
        redirect_stdout=False,
        redirect_stderr=False,
    ) as progress:
        task = progress.add_task("submit", total=len(specs))
        for batch in batches(specs):
            try:
                jobs.extend(client.submit_many(batch))
            except JobfleetError as exc:
                first = len(jobs) + 1
                exc.add_note(
                    f"jobs {first}-{first + len(batch) - 1} of {len(specs)} were refused; "
                    f"the {len(jobs)} before them were submitted"
                )
                raise
            progress.advance(task, len(batch))


def log_targets(stream: str) -> list[tuple[str, TextIO]]:
    """Which streams to fetch and where to write each: one asked-for stream goes to stdout."""
    if stream == "all":
        return [("stdout", sys.stdout), ("stderr", sys.stderr)]
    return [(stream, sys.stdout)]


def pump_log(client: Client, job_id: str, name: str, run_id: str | None, out: TextIO) -> None:
    for line in client.follow_logs(job_id, name, run_id):
        out.write(line + "\n")
        out.flush()


def follow_many(
    client: Client, job_id: str, run_id: str | None, targets: list[tuple[str, TextIO]]
) -> None:
    """Follow several streams at once, one thread each; the first error is raised here."""
    errors: list[BaseException] = []

    def pump(name: str, out: TextIO) -> None:
        try:
            pump_log(client, job_id, name, run_id, out)
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=pump, args=t, daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads) and not errors:
        for thread in threads:
            thread.join(0.2)
    if errors:
        raise errors[0]
