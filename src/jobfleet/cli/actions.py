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

    @cli.command(context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, metavar="[JOB_ID] PRIORITY")
    @click.option("--job-set", metavar="S", help="every live job of this job set instead")
    @click.option("--queue", metavar="Q", default="default", help="queue of the job set")
    @opt
    @click.pass_obj
    def reprioritize(
        state: CliState, args: tuple[str, ...], job_set: str | None, queue: str, fmt: str
    ) -> None:
        """Set a job's priority (higher runs first), or a job set's with --job-set;
        takes effect in the next scheduling cycle."""
        want = 1 if job_set else 2
        if len(args) != want:
            usage = "--job-set S [--queue Q] PRIORITY" if job_set else "JOB_ID PRIORITY"
            raise click.UsageError(f"expected {usage}")
        try:
            priority = int(args[-1])
        except ValueError:
            raise click.BadParameter(
                f"{args[-1]!r} is not an integer", param_hint="PRIORITY"
            ) from None
        if job_set:
            from jobfleet.cli.queues import reprioritize_job_set

            reprioritize_job_set(state, queue, job_set, priority, fmt)
            return
        job = state.client().reprioritize(args[0], priority)
        _emit(job, fmt, f"{args[0]}: priority {job.get('priority')}")

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
