"""`jobfleet schedule create|list|get|pause|resume|trigger|delete` (PRODUCT.md §14.2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from jobfleet.cli import output
from jobfleet.cli.specs import build_spec, parse_pairs

if TYPE_CHECKING:
    from jobfleet.cli.main import CliState

FORMAT = click.option(
    "-o", "--output", "fmt", type=click.Choice(["table", "json"]), default="table"
)


def schedules_table(items: Sequence[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 2, 0, 0))
    for column in ("NAME", "WHEN", "TZ", "OVERLAP", "STATE", "NEXT TICK", "LAST JOB"):
        table.add_column(column, overflow="fold")
    for s in items:
        last = s.get("last_job") or {}
        table.add_row(
            s["name"],
            s["cron"] or f"every {s['every']:g}s",
            s["timezone"],
            s["overlap"],
            "paused" if s["paused"] else "active",
            s.get("next_tick") or "-",
            f"{last['id']} {last['state']}" if last else "-",
        )
    return table


def _show(value: Any, fmt: str) -> None:
    if fmt == "json":
        output.echo_json(value)
    else:
        output.console().print(schedules_table([value]))


def register(cli: click.Group) -> None:
    @cli.group("schedule")
    def schedule() -> None:
        """Schedules: a job submitted on each tick of a cron expression or an interval."""

    @schedule.command("create")
    @click.argument("name")
    @click.option("--cron", metavar="EXPR", help="5 fields, e.g. '*/5 * * * *'")
    @click.option("--every", metavar="D", help="an interval, e.g. 30s, 1h")
    @click.option("--timezone", metavar="TZ", default="UTC", show_default=True)
    @click.option(
        "--overlap", type=click.Choice(["allow", "skip", "cancel_previous"]), default="allow"
    )
    @click.option("--catchup", type=click.Choice(["none", "one"]), default="one")
    @click.option("--paused", is_flag=True, help="create it paused")
    @click.option("--queue", metavar="Q")
    @click.option("--job-set", metavar="S")
    @click.option("--cpu", type=float, metavar="C")
    @click.option("--memory", metavar="M")
    @click.option("--gpu", type=click.IntRange(min=0), metavar="G")
    @click.option("--priority", type=int, metavar="N")
    @click.option("--timeout", metavar="D")
    @click.option("--retries", type=click.IntRange(min=0), metavar="N")
    @click.option("--label", "labels", multiple=True, metavar="k=v")
    @click.option("--env", multiple=True, metavar="K=V")
    @click.option("--shell", is_flag=True)
    @FORMAT
    @click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
    @click.pass_obj
    def create(
        state: CliState,
        /,
        name: str,
        cron: str | None,
        every: str | None,
        timezone: str,
        overlap: str,
        catchup: str,
        paused: bool,
        labels: tuple[str, ...],
        env: tuple[str, ...],
        fmt: str,
        command: tuple[str, ...],
        **flags: Any,
    ) -> None:
        """Create schedule NAME: (--cron EXPR | --every D) [submit flags] -- CMD [ARG...]."""
        if (cron is None) == (every is None):
            raise click.UsageError("give exactly one of --cron and --every")
        try:
            job = build_spec(
                command,
                labels=parse_pairs(labels, "label"),
                env=parse_pairs(env, "environment variable"),
                **flags,
            )
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        fields: dict[str, Any] = {
            "timezone": timezone,
            "overlap": overlap,
            "catchup": catchup,
            "paused": paused,
            **({"cron": cron} if cron else {"every": every}),
        }
        _show(state.client().create_schedule(name, job, **fields), fmt)

    @schedule.command("list")
    @FORMAT
    @click.pass_obj
    def list_(state: CliState, fmt: str) -> None:
        """Every schedule you may see: its next tick and its last job."""
        items = state.client().schedules()
        if fmt == "json":
            output.echo_json(items)
        elif not items:
            click.echo("no schedules", err=True)
        else:
            output.console().print(schedules_table(items))

    @schedule.command("get")
    @click.argument("name")
    @FORMAT
    @click.pass_obj
    def get(state: CliState, name: str, fmt: str) -> None:
        """One schedule, with its job spec under -o json."""
        _show(state.client().get_schedule(name), fmt)

    for action, text in (
        ("pause", "No tick fires until it is resumed."),
        ("resume", "Ticks fire again, from the next one after now."),
    ):

        @schedule.command(action, help=text)
        @click.argument("name")
        @FORMAT
        @click.pass_obj
        def act(state: CliState, name: str, fmt: str, action: str = action) -> None:
            _show(state.client().schedule_action(name, action), fmt)

    @schedule.command("trigger")
    @click.argument("name")
    @FORMAT
    @click.pass_obj
    def trigger(state: CliState, name: str, fmt: str) -> None:
        """Submit the schedule's job now; prints its id."""
        job = state.client().schedule_action(name, "trigger")
        if fmt == "json":
            output.echo_json(job)
        else:
            click.echo(job["id"])

    @schedule.command("delete")
    @click.argument("name")
    @click.pass_obj
    def delete(state: CliState, name: str) -> None:
        """Delete the schedule (the jobs it submitted stay)."""
        state.client().delete_schedule(name)
        click.echo(f"deleted schedule {name}")
