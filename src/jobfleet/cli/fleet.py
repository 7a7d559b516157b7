"""The fleet's commands: `server`, `scheduler`, `worker` (processes) and `workers`, `shards`."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from jobfleet.cli import output
from jobfleet.cli.specs import parse_pairs
from jobfleet.config import load_settings
from jobfleet.errors import ConfigError

if TYPE_CHECKING:
    from jobfleet.cli.main import CliState

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
CONFIG = click.option(
    "--config", "config_file", type=click.Path(dir_okay=False), help="YAML config file"
)
DATA_DIR = click.option(
    "--data-dir", type=click.Path(path_type=Path), help="where logs and run files are kept"
)


def _labels(_ctx: click.Context, _param: click.Parameter, value: Iterable[str]) -> dict[str, str]:
    try:
        return parse_pairs(list(value), "label")
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.command("server")
@click.option("--database", metavar="URL", help="database URL (PostgreSQL for a fleet)")
@click.option("--host", help="address to listen on (default 127.0.0.1)")
@click.option("--port", type=int, help="port to listen on (default 8360)")
@DATA_DIR
@CONFIG
def server(
    database: str | None,
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    config_file: str | None,
) -> None:
    """Run the API only (stateless: run as many replicas as you like)."""
    from jobfleet.logs import setup_logging
    from jobfleet.processes import run_server
    from jobfleet.runtime import default_data_dir, exit_now

    settings = load_settings(config_file, database=database, host=host, port=port)
    setup_logging(settings.log_format)
    run_server(settings, (data_dir or default_data_dir()).absolute())
    exit_now(0)


@click.command("scheduler")
@click.option("--database", metavar="URL", help="database URL (PostgreSQL for a fleet)")
@DATA_DIR
@CONFIG
def scheduler(database: str | None, data_dir: Path | None, config_file: str | None) -> None:
    """Route, place and keep house; one leads (elected in the database), others stand by."""
    from jobfleet.logs import setup_logging
    from jobfleet.processes import run_scheduler
    from jobfleet.runtime import default_data_dir

    settings = load_settings(config_file, database=database)
    setup_logging(settings.log_format)
    run_scheduler(settings, (data_dir or default_data_dir()).absolute())


@click.command("worker")
@click.option("--server", "server_url", metavar="URL", help="a server (or JOBFLEET_SERVER)")
@click.option("--token", metavar="T", help="a worker token (or JOBFLEET_TOKEN)")
@click.option("--shard", metavar="NAME", help="the shard this worker serves (default: default)")
@click.option("--name", metavar="N", help="worker name (default: the host name)")
@click.option("--cpu", type=float, metavar="N", help="cores to offer (default: detected)")
@click.option("--memory", metavar="M", help="memory to offer, e.g. 16Gi (default: detected)")
@click.option("--gpu", type=click.IntRange(min=0), metavar="N", help="GPUs (default: detected)")
@click.option("--label", "labels", multiple=True, metavar="k=v", callback=_labels)
@click.option("--drain-timeout", metavar="D", help="on SIGTERM, evict jobs after this (5m)")
@DATA_DIR
@CONFIG
@click.pass_obj
def worker(
    state: CliState,
    server_url: str | None,
    token: str | None,
    shard: str | None,
    name: str | None,
    cpu: float | None,
    memory: str | None,
    gpu: int | None,
    labels: dict[str, str],
    drain_timeout: str | None,
    data_dir: Path | None,
    config_file: str | None,
) -> None:
    """Run jobs on this machine for a shard; talks only HTTP to --server with --token."""
    from jobfleet.client.profile import resolve
    from jobfleet.datadir import AlreadyRunning
    from jobfleet.logs import setup_logging
    from jobfleet.runtime import default_data_dir
    from jobfleet.worker.remote import run_worker, worker_name

    base = load_settings(config_file)
    setup_logging(base.log_format)
    overrides = {
        "shard": shard,
        "name": name,
        "cpu": cpu,
        "memory": memory,
        "gpu": gpu,
        "drain_timeout": drain_timeout,
    }
    section = base.worker.model_dump(exclude_unset=True)
    section.update({k: v for k, v in overrides.items() if v is not None})
    if labels:
        section["labels"] = {**base.worker.labels, **labels}
    settings = load_settings(config_file, worker=section)
    url, token = resolve(server_url or state.server, token or state.token)
    if not token:
        raise ConfigError("a worker needs a token: pass --token T or set JOBFLEET_TOKEN")
    where = (data_dir or default_data_dir() / f"worker-{worker_name(settings)}").absolute()
    try:
        code = run_worker(settings, url, token, where)
    except AlreadyRunning as exc:
        if data_dir is None:
            exc.add_note("two workers on one machine need their own --name (or --data-dir)")
        raise
    sys.exit(code)


def _table(*columns: str) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 2, 0, 0))
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _res(r: Mapping[str, Any]) -> str:
    return f"{r['cpu']:g} cpu, {output.memory_text(r['memory'])}, {r['gpu']} gpu"


def _pairs(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


def _said(answer: Mapping[str, Any], fmt: str, text: str) -> None:
    if fmt == "json":
        output.echo_json(dict(answer))
    else:
        click.echo(text)


def workers_table(items: Iterable[Mapping[str, Any]], now: datetime) -> Table:
    table = _table(
        "NAME", "SHARD", "STATE", "RUNNING", "ALLOCATED", "CAPACITY", "ISOLATION", "LABELS", "SEEN"
    )
    for w in items:
        table.add_row(
            w["name"],
            w["shard"],
            _state_text(w),
            str(w["running"]),
            _res(w["allocated"]),
            _res(w["capacity"]),
            isolation_text(w.get("info") or {}),
            _pairs(w["labels"]),
            output.age(w["last_heartbeat"], now) + " ago",
        )
    return table


def _state_text(w: Mapping[str, Any]) -> str:
    """The state, and for a cordoned or drained worker who asked (and when a drain evicts)."""
    cordon = w.get("cordon")
    if not isinstance(cordon, Mapping):
        return str(w["state"])
    text = f"{w['state']} (by {cordon.get('requested_by')}"
    if cordon.get("evict_at"):
        text += f", evicts at {cordon['evict_at']}"
    return text + ")"


def isolation_text(info: Mapping[str, Any]) -> str:
    """The worker's isolation backend and namespaces, as it reported them at start."""
    iso = info.get("isolation")
    if not isinstance(iso, Mapping):
        return "-"
    spaces = [
        n for n, key in (("pid", "pid_namespace"), ("net", "network_namespace")) if iso.get(key)
    ]
    return str(iso.get("backend", "?")) + (f"+{'+'.join(spaces)}ns" if spaces else "")


def shards_table(items: Iterable[Mapping[str, Any]]) -> Table:
    table = _table("NAME", "WORKERS", "SCHEDULED", "RUNNING", "ALLOCATED", "CAPACITY", "LABELS")
    for s in items:
        table.add_row(
            s["name"],
            f"{s['workers']}/{s['workers_total']}",
            str(s["scheduled"]),
            str(s["leased"] + s["running"]),
            _res(s["allocated"]),
            _res(s["capacity"]),
            _pairs(s["labels"]),
        )
    return table


def register(cli: click.Group, opt: Decorator) -> None:
    """Add the commands to `cli`; `opt` is the shared `-o json|table` option."""
    for command in (server, scheduler, worker):
        cli.add_command(command)

    @cli.group("workers", invoke_without_command=True)
    @opt
    @click.pass_context
    def workers(ctx: click.Context, fmt: str) -> None:
        """List the workers: shard, state, running jobs, allocation, capacity, last heartbeat.

        `workers cordon|uncordon|drain NAME` take a worker out of service and back."""
        if ctx.invoked_subcommand is not None:
            return
        state: CliState = ctx.obj
        items = state.client().workers()
        if fmt == "json":
            output.echo_json(items)
        else:
            output.console().print(workers_table(items, datetime.now(UTC)))

    @workers.command("cordon")
    @click.argument("name")
    @opt
    @click.pass_obj
    def cordon(state: CliState, name: str, fmt: str) -> None:
        """No new leases for worker NAME; its running jobs go on."""
        _said(state.client().cordon(name), fmt, f"worker {name} cordoned: it takes no new jobs")

    @workers.command("uncordon")
    @click.argument("name")
    @opt
    @click.pass_obj
    def uncordon(state: CliState, name: str, fmt: str) -> None:
        """Worker NAME takes new leases again."""
        _said(state.client().uncordon(name), fmt, f"worker {name} is READY again")

    @workers.command("drain")
    @click.argument("name")
    @click.option("--timeout", metavar="D", help="evict what still runs after D (default 5m)")
    @opt
    @click.pass_obj
    def drain(state: CliState, name: str, timeout: str | None, fmt: str) -> None:
        """Cordon worker NAME, then evict what still runs after the timeout (retried elsewhere,
        not counted against the jobs' retries)."""
        answer = state.client().drain(name, timeout)
        _said(answer, fmt, f"worker {name} draining: what runs at {answer['evict_at']} is evicted")

    @cli.command("shards")
    @opt
    @click.pass_obj
    def shards(state: CliState, fmt: str) -> None:
        """List the shards: live workers, jobs in the queue, allocation, capacity."""
        items = state.client().shards()
        if fmt == "json":
            output.echo_json(items)
        else:
            output.console().print(shards_table(items))
