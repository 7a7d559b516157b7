"""`jobfleet queue list|get|create|update|delete`, and `reprioritize --job-set`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from jobfleet.cli import output
from jobfleet.errors import JobfleetError

if TYPE_CHECKING:
    from jobfleet.cli.main import CliState

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
LIVE = ("WAITING", "QUEUED", "SCHEDULED", "LEASED", "RUNNING")


def limits_text(q: dict[str, Any]) -> str:
    parts = []
    if q.get("max_running_jobs") is not None:
        parts.append(f"{q['max_running_jobs']} jobs")
    res = q.get("max_resources") or {}
    if res.get("cpu") is not None:
        parts.append(f"{res['cpu']:g} cpu")
    if res.get("memory") is not None:
        parts.append(f"{output.memory_text(res['memory'])} memory")
    if res.get("gpu") is not None:
        parts.append(f"{res['gpu']} gpu")
    return ", ".join(parts) or "-"


def queues_table(items: Sequence[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 2, 0, 0))
    for column in ("NAME", "WEIGHT", "LIMITS", *LIVE):
        table.add_column(column, overflow="fold")
    for q in items:
        jobs = q.get("jobs") or {}
        table.add_row(
            q["name"], f"{q['weight']:g}", limits_text(q), *(str(jobs.get(s, 0)) for s in LIVE)
        )
    return table


def _fields(
    weight: float | None,
    max_running_jobs: int | None,
    cpu: float | None,
    memory: str | None,
    gpu: int | None,
    no_limits: bool,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if weight is not None:
        out["weight"] = weight
    if no_limits:
        out["max_running_jobs"] = None
        out["max_resources"] = None
    if max_running_jobs is not None:
        out["max_running_jobs"] = max_running_jobs
    res = {k: v for k, v in (("cpu", cpu), ("memory", memory), ("gpu", gpu)) if v is not None}
    if res:
        out["max_resources"] = res
    return out


def _limit_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(
        [
            click.option("--weight", type=float, help="fair-share weight (default 1)"),
            click.option(
                "--max-running-jobs", type=click.IntRange(min=0), help="at most N running jobs"
            ),
            click.option("--max-cpu", type=float, help="at most this many cores in use"),
            click.option("--max-memory", metavar="M", help="at most this much memory, e.g. 64Gi"),
            click.option("--max-gpu", type=click.IntRange(min=0), help="at most N GPUs in use"),
        ]
    ):
        f = opt(f)
    return f


def register(cli: click.Group, opt: Decorator) -> None:
    """Add `queue` and the job-set form of `reprioritize` to `cli`."""

    @cli.group()
    def queue() -> None:
        """Queues: fair-share weight, limits, retry policy."""

    @queue.command("list")
    @opt
    @click.pass_obj
    def list_(state: CliState, fmt: str) -> None:
        """Every queue, its weight, limits and live jobs by state."""
        items = state.client().list_queues()
        if fmt == "json":
            output.echo_json(items)
        else:
            output.console().print(queues_table(items))

    @queue.command()
    @click.argument("name")
    @opt
    @click.pass_obj
    def get(state: CliState, name: str, fmt: str) -> None:
        """One queue."""
        _show(state.client().get_queue(name), fmt)

    @queue.command()
    @click.argument("name")
    @_limit_options
    @opt
    @click.pass_obj
    def create(state: CliState, /, name: str, fmt: str, **kw: Any) -> None:
        """Create queue NAME."""
        fields = _fields(
            kw["weight"],
            kw["max_running_jobs"],
            kw["max_cpu"],
            kw["max_memory"],
            kw["max_gpu"],
            False,
        )
        _show(state.client().create_queue(name, **fields), fmt)

    @queue.command()
    @click.argument("name")
    @_limit_options
    @click.option("--no-limits", is_flag=True, help="remove max_running_jobs and max_resources")
    @opt
    @click.pass_obj
    def update(state: CliState, /, name: str, no_limits: bool, fmt: str, **kw: Any) -> None:
        """Change queue NAME (only the options given)."""
        fields = _fields(
            kw["weight"],
            kw["max_running_jobs"],
            kw["max_cpu"],
            kw["max_memory"],
            kw["max_gpu"],
            no_limits,
        )
        if not fields:
            raise JobfleetError(
                "nothing to change: give --weight, a --max-... option or --no-limits"
            )
        _show(state.client().update_queue(name, **fields), fmt)

    @queue.command()
    @click.argument("name")
    @click.pass_obj
    def delete(state: CliState, name: str) -> None:
        """Delete queue NAME (refused while it holds jobs that have not ended)."""
        state.client().delete_queue(name)
        click.echo(f"deleted queue {name}")


def reprioritize_job_set(
    state: CliState, queue: str, job_set: str, priority: int, fmt: str
) -> None:
    answer = state.client().reprioritize_job_set(queue, job_set, priority)
    if fmt == "json":
        output.echo_json(answer)
    else:
        click.echo(
            f"job set {queue}/{job_set}: {answer['reprioritized']} jobs now at priority {priority}"
        )


def _show(q: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        output.echo_json(q)
    else:
        output.console().print(queues_table([q]))
