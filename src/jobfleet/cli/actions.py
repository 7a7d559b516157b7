"""The job actions beyond cancel: `reprioritize`, `preempt`, `retry` (retry-as-new)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from jobfleet.cli import output

if TYPE_CHECKING:
    from jobfleet.cli.main import CliState


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def register(cli: click.Group, opt: Decorator) -> None:
    """Add the commands to `cli`; `opt` is the shared `-o json|table` option."""

    @cli.command()
    @click.argument("job_id")
    @click.argument("priority", type=int)
    @opt
    @click.pass_obj
    def reprioritize(state: CliState, job_id: str, priority: int, fmt: str) -> None:
        """Set JOB_ID's priority (higher runs first); takes effect in the next cycle."""
        job = state.client().reprioritize(job_id, priority)
        _emit(job, fmt, f"{job_id}: priority {job.get('priority')}")

    @cli.command()
    @click.argument("job_id")
    @opt
    @click.pass_obj
    def preempt(state: CliState, job_id: str, fmt: str) -> None:
        """Preempt a running job: SIGTERM, grace, SIGKILL; by default it is requeued."""
        job = state.client().preempt(job_id)
        if fmt == "json":
            output.echo_json(job)
        else:
            click.echo(
                f"preemption requested for {job_id}: its worker stops it, then it is requeued"
            )

    @cli.command()
    @click.argument("job_id")
    @opt
    @click.pass_obj
    def retry(state: CliState, job_id: str, fmt: str) -> None:
        """Submit a finished job again as a new job (linked by retry_of); prints the new id."""
        job = state.client().retry(job_id)
        _emit(job, fmt, str(job["id"]))


def _emit(job: dict[str, Any], fmt: str, text: str) -> None:
    """The job as JSON for scripts, else one line for people."""
    if fmt == "json":
        output.echo_json(job)
    else:
        click.echo(text)
