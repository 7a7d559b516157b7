"""`jobfleet usage`: what runs reserved over a window, per group (PRODUCT.md §14.3)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from jobfleet.cli import output

if TYPE_CHECKING:
    from jobfleet.cli.main import CliState

FIELDS = (
    "group",
    "runs",
    "succeeded",
    "failed",
    "cpu_seconds",
    "memory_gib_seconds",
    "gpu_seconds",
    "wall_seconds",
)


def hours(seconds: float) -> str:
    return f"{seconds / 3600:,.2f}"


def usage_table(items: Sequence[dict[str, Any]], by: str) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 2, 0, 0))
    for column in (by.upper(), "RUNS", "OK", "FAILED", "CPU-H", "MEM GIB-H", "GPU-H", "WALL-H"):
        table.add_column(column, justify="left" if column == by.upper() else "right")
    for i in items:
        table.add_row(
            str(i["group"]),
            str(i["runs"]),
            str(i["succeeded"]),
            str(i["failed"]),
            hours(i["cpu_seconds"]),
            hours(i["memory_gib_seconds"]),
            hours(i["gpu_seconds"]),
            hours(i["wall_seconds"]),
        )
    return table


def usage_csv(items: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(items)
    return out.getvalue()


def register(cli: click.Group) -> None:
    @cli.command("usage")
    @click.option("--since", default="24h", show_default=True, help="RFC 3339 time or 24h (ago)")
    @click.option("--until", metavar="T", help="RFC 3339 time or 1h (ago); default now")
    @click.option(
        "--by",
        type=click.Choice(["queue", "job_set", "principal", "worker", "shard"]),
        default="queue",
        show_default=True,
    )
    @click.option(
        "-o", "--output", "fmt", type=click.Choice(["table", "json", "csv"]), default="table"
    )
    @click.pass_obj
    def usage(state: CliState, since: str, until: str | None, by: str, fmt: str) -> None:
        """Resources x time of runs (RUNNING to their end) in a window, per group; only the
        queues you may see. Table figures are hours (CPU-H: core-hours)."""
        items = state.client().usage(since, until, by)
        if fmt == "json":
            output.echo_json(items)
        elif fmt == "csv":
            click.echo(usage_csv(items), nl=False)
        elif not items:
            click.echo("no runs in the window", err=True)
        else:
            output.console().print(usage_table(items, by))
