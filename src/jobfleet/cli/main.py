"""The `jobfleet` command (PRODUCT.md §11): submit, get, list, cancel, events, history, logs, auth.

Human output is rich tables; `-o json` prints plain JSON for scripts. Every expected error is one
line, `error: <message>`, on stderr and exit status 2 (1 for a job that did not succeed under
`submit --wait`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import httpx

from jobfleet.cli import live, output
from jobfleet.cli.specs import (
    build_spec,
    load_specs,
    merge_defaults,
    parse_pairs,
    validate_specs,
)
from jobfleet.client.profile import profile_path, resolve
from jobfleet.client.sync import TERMINAL_STATES
from jobfleet.client.sync import JsonClient as Client  # the CLI prints the server's JSON as is
from jobfleet.errors import JobfleetError, NotFound, Unauthorized

Json = dict[str, Any]
OUTPUT = click.option(
    "-o",
    "--output",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people, json for scripts",
)


@dataclass
class CliState:
    """What the group options give every command; the client is made on first use."""

    server: str | None = None
    token: str | None = None
    transport: httpx.BaseTransport | None = None  # tests stand a fake server in here
    _client: Client | None = field(default=None, repr=False)

    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.server, self.token, transport=self.transport)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class JobfleetGroup(click.Group):
    """Turns expected errors into one line on stderr instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except JobfleetError as exc:
            report_error(exc)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("", err=True)
            ctx.exit(130)


def report_error(exc: JobfleetError) -> None:
    click.echo(f"error: {exc}", err=True)
    for note in getattr(exc, "__notes__", []):
        click.echo(f"  {note}", err=True)
    if isinstance(exc, Unauthorized) and "auth token" not in str(exc):
        click.echo(
            "  (pass --token or set JOBFLEET_TOKEN; on the server's machine "
            "`jobfleet auth token` prints one)",
            err=True,
        )


def _pairs(what: str) -> Callable[[click.Context, click.Parameter, Sequence[str]], dict[str, str]]:
    def callback(
        ctx: click.Context, param: click.Parameter, value: Sequence[str]
    ) -> dict[str, str]:
        try:
            return parse_pairs(value, what)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc

    return callback


def _absolute(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return None if value is None else os.path.abspath(os.path.expanduser(value))


@click.group(cls=JobfleetGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--server", metavar="URL", help="jobfleet server (else JOBFLEET_SERVER, profile)")
@click.option("--token", metavar="T", help="bearer token (else JOBFLEET_TOKEN, profile)")
@click.pass_context
def cli(ctx: click.Context, server: str | None, token: str | None) -> None:
    """jobfleet: submit, watch and manage batch jobs."""
    state = ctx.ensure_object(CliState)
    state.server = server or state.server
    state.token = token or state.token
    ctx.call_on_close(state.close)


# -- submit -----------------------------------------------------------------------------------


@cli.command(
    context_settings={"allow_interspersed_args": False},
    short_help="Submit a job (-- CMD [ARG...]) or many (-f jobs.yaml).",
)
@click.option("--queue", metavar="Q", help="queue (default: default)")
@click.option("--job-set", metavar="S", help="job set: a name to watch and cancel jobs by")
@click.option("--cpu", type=float, metavar="C", help="cores; fractions allowed")
@click.option("--memory", metavar="M", help="bytes or a quantity like 512Mi, 2G")
@click.option("--gpu", type=click.IntRange(min=0), metavar="G", help="number of GPUs")
@click.option("--priority", type=int, metavar="N", help="higher runs first (default 0)")
@click.option(
    "--priority-class",
    metavar="C",
    help="a configured priority class: placed before lower classes, may preempt them",
)
@click.option("--timeout", metavar="D", help="deadline of one run, e.g. 30m, 1h30m")
@click.option("--retries", type=click.IntRange(min=0), metavar="N", help="max retries")
@click.option("--after", multiple=True, metavar="JOB_ID", help="run after JOB_ID succeeds")
@click.option("--client-id", metavar="K", help="deduplication key within the queue")
@click.option("--network", type=click.Choice(["default", "none"]), help="none: loopback only")
@click.option(
    "--label", "labels", multiple=True, metavar="k=v", callback=_pairs("label"), help="a label"
)
@click.option(
    "--env", multiple=True, metavar="K=V", callback=_pairs("environment variable"), help="env var"
)
@click.option(
    "--working-dir",
    metavar="DIR",
    callback=_absolute,
    help="directory to run in, on the worker (a relative one is made absolute from here); "
    "default: a fresh one",
)
@click.option("--shell", is_flag=True, help="run the command as one string through /bin/sh")
@click.option("--array", metavar="N[%M]", help="N jobs with indexes 0..N-1, at most M at once")
@click.option("--not-before", metavar="T", help="start no earlier: RFC 3339 time or 10m")
@click.option(
    "--wait",
    is_flag=True,
    help="wait until the job ends, then show it and its output; exit 0 only if SUCCEEDED",
)
@OUTPUT
@click.option(
    "-f",
    "--file",
    "file_",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    help="YAML: a list of job specs or {jobs: [...]}; flags give defaults",
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def submit(
    ctx: click.Context,
    /,
    command: tuple[str, ...],
    file_: str | None,
    wait: bool,
    fmt: str,
    **flags: Any,
) -> None:
    """Submit a job: jobfleet submit [OPTIONS] -- CMD [ARG...]; prints its id."""
    state = ctx.find_object(CliState)
    assert state is not None
    if file_ is not None:
        if command:
            raise click.UsageError("give either -f FILE or a command, not both")
        if wait:
            raise click.UsageError("--wait waits for one job; it does not combine with -f")
        _submit_file(state.client(), file_, build_spec(None, **flags), fmt)
        return
    if not command:
        raise click.UsageError(
            "nothing to run: give a command after --, e.g. `jobfleet submit -- echo hello`, "
            "or -f jobs.yaml"
        )
    client = state.client()
    if flags.get("array") and wait:
        raise click.UsageError("--wait waits for one job; it does not combine with --array")
    try:
        spec = build_spec(command, **flags)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    job = client.submit(spec)
    if "jobs" in job and "array_id" in job:  # §14.1: an array answers its id and its jobs
        if fmt == "json":
            output.echo_json(job)
        else:
            click.echo(job["array_id"])
        return
    if not wait:
        if fmt == "json":
            output.echo_json(job)
        else:
            click.echo(job["id"])
        return
    if fmt == "table":
        click.echo(f"submitted {job['id']}; waiting for it to finish...", err=True)
    job = client.wait(job["id"])
    show_job(job, fmt)
    if fmt == "table":
        show_output(client, job)
    ctx.exit(0 if job["state"] == "SUCCEEDED" else 1)


OUTPUT_LINES = 50


def show_output(client: Client, job: Json) -> None:
    """The end of the last run's stdout, after the job (what `submit --wait` ran printed)."""
    if not job.get("runs"):
        return
    console = output.console()
    try:
        lines = client.logs(job["id"], "stdout").splitlines()
    except JobfleetError as exc:  # the job's end decides the exit status, not its log
        console.print(f"\nits output: jobfleet logs {job['id']} ({exc})", markup=False)
        return
    if not lines:
        console.print(
            f"\nno output on stdout (its stderr: jobfleet logs {job['id']} --stream stderr)",
            markup=False,
        )
        return
    shown = lines[-OUTPUT_LINES:]
    head = "Output (stdout)"
    if len(shown) < len(lines):
        head += f", last {len(shown)} of {len(lines)} lines (all: jobfleet logs {job['id']})"
    console.print(f"\n{head}", style="bold", markup=False, highlight=False)
    sys.stdout.flush()
    click.echo("\n".join(shown))


def _read_file(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    return Path(path).read_text(encoding="utf-8")


def _submit_file(client: Client, path: str, defaults: Json, fmt: str) -> None:
    source = "stdin" if path == "-" else path
    specs = [merge_defaults(s, defaults) for s in load_specs(_read_file(path), source)]
    validate_specs(specs, source)
    jobs: list[Json] = []
    try:
        live.submit_in_batches(client, specs, jobs)
    finally:
        if fmt == "json":
            output.echo_json(jobs)
        else:
            for job in jobs:
                click.echo(job["id"])


# -- get, list --------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def show_job(job: Json, fmt: str) -> None:
    if fmt == "json":
        output.echo_json(job)
    else:
        output.console().print(output.job_view(job, _now()))


@cli.command()
@click.argument("job_id")
@OUTPUT
@click.pass_obj
def get(state: CliState, job_id: str, fmt: str) -> None:
    """Show one job: state, spec, runs, failure, actions."""
    show_job(state.client().get(job_id), fmt)


@cli.command("list")
@click.option("--queue", metavar="Q", help="only jobs of this queue")
@click.option("--job-set", metavar="S", help="only jobs of this job set")
@click.option("--array", "array_id", metavar="ID", help="only the jobs of this job array")
@click.option("--state", "state_", metavar="S", help="only jobs in this state, e.g. running")
@click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="k=v",
    callback=_pairs("label"),
    help="only jobs with this label (repeatable: all must match)",
)
@click.option(
    "-q", "text", metavar="TEXT", help="only jobs whose id, job set, command or labels hold TEXT"
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    metavar="N",
    help="at most N jobs",
)
@click.option("--all", "all_", is_flag=True, help="every matching job, page after page")
@OUTPUT
@click.pass_obj
def list_jobs(
    state: CliState,
    queue: str | None,
    job_set: str | None,
    array_id: str | None,
    state_: str | None,
    labels: dict[str, str],
    text: str | None,
    limit: int,
    all_: bool,
    fmt: str,
) -> None:
    """List jobs, newest first as the server orders them."""
    client = state.client()
    filters: Json = {
        "queue": queue,
        "job_set": job_set,
        "state": state_.upper() if state_ else None,
        "label": [f"{k}={v}" for k, v in labels.items()] or None,
        "q": text,
        "array_id": array_id,
    }
    more = False
    if all_ or limit > 1000:
        jobs: list[Json] = []
        for job in client.iter_jobs(**filters):
            if not all_ and len(jobs) == limit:
                more = True
                break
            jobs.append(job)
    else:
        page = client.list(**filters, limit=limit)
        jobs, more = page["items"], bool(page.get("next_cursor"))
    if fmt == "json":
        output.echo_json(jobs)
        return
    if not jobs:
        click.echo("no jobs match", err=True)
        return
    output.console().print(output.jobs_table(jobs, _now()))
    if more:
        click.echo(f"(first {len(jobs)} shown: use --all or --limit N for more)", err=True)


# -- cancel -----------------------------------------------------------------------------------


@cli.command()
@click.argument("job_id", required=False)
@click.option("--reason", metavar="R", help="recorded on the job's cancel event")
@click.option("--job-set", metavar="S", help="cancel every job of this job set instead")
@click.option("--queue", metavar="Q", help="queue of the job set (default: default)")
@click.option("--state", "states", multiple=True, metavar="S", help="only jobs in this state")
@OUTPUT
@click.pass_obj
def cancel(
    state: CliState,
    job_id: str | None,
    reason: str | None,
    job_set: str | None,
    queue: str | None,
    states: tuple[str, ...],
    fmt: str,
) -> None:
    """Cancel a job (JOB_ID), or a job set (--job-set S [--queue Q])."""
    if job_set is None:
        if job_id is None:
            raise click.UsageError("give a JOB_ID, or --job-set S [--queue Q]")
        if queue is not None or states:
            raise click.UsageError("--queue and --state go with --job-set")
        _cancel_job(state.client(), job_id, reason, fmt)
        return
    if job_id is not None:
        raise click.UsageError("give a JOB_ID or --job-set, not both")
    if reason is not None:
        raise click.UsageError("--reason applies to one job, not to a job set")
    queue = queue or "default"
    answer = state.client().cancel_job_set(queue, job_set, [s.upper() for s in states])
    if fmt == "json":
        output.echo_json(answer)
        return
    click.echo(
        f"job set {queue}/{job_set}: {answer.get('cancelled', 0)} cancelled, "
        f"{answer.get('cancel_requested', 0)} cancel requested"
    )


def _cancel_job(client: Client, job_id: str, reason: str | None, fmt: str) -> None:
    try:
        job = client.cancel(job_id, reason)
    except NotFound:
        try:  # an array id (§14.1): cancel the array's unfinished jobs
            answer = client.cancel_array(job_id, reason)
        except NotFound:
            raise NotFound(f"no job or array {job_id!r}") from None
        if fmt == "json":
            output.echo_json(answer)
        else:
            click.echo(
                f"array {job_id}: {answer.get('cancelled', 0)} cancelled, "
                f"{answer.get('cancel_requested', 0)} cancel requested"
            )
        return
    if fmt == "json":
        output.echo_json(job)
    elif job.get("state") == "CANCELLED":
        click.echo(f"cancelled {job_id}")
    elif job.get("cancel_requested"):
        click.echo(f"cancel requested for {job_id}: it is cancelled once its worker stops it")
    else:
        click.echo(f"{job_id} is {job.get('state')}")


# -- events, history --------------------------------------------------------------------------


@cli.command()
@click.argument("job_id")
@click.option("-f", "--follow", is_flag=True, help="keep printing new events until the job ends")
@OUTPUT
@click.pass_obj
def events(state: CliState, job_id: str, follow: bool, fmt: str) -> None:
    """A job's events, oldest first (-o json: one JSON object per line)."""
    client = state.client()
    past = client.job_events(job_id)
    if fmt != "json":
        click.echo(output.event_header())
    for event in past:
        _print_event(event, fmt)
    if not follow or (past and past[-1].get("state") in TERMINAL_STATES):
        return
    after = max((int(e["id"]) for e in past), default=0)
    with closing(client.events(job_id=job_id, after=after)) as stream:
        for event in stream:
            if event.get("job_id") != job_id:
                continue
            _print_event(event, fmt)
            if event.get("state") in TERMINAL_STATES:
                return


def _print_event(event: Json, fmt: str) -> None:
    if fmt == "json":
        output.echo_json(event, compact=True)
    else:
        click.echo(output.event_line(event))
    sys.stdout.flush()


@cli.command()
@click.argument("job_id")
@OUTPUT
@click.pass_obj
def history(state: CliState, job_id: str, fmt: str) -> None:
    """A job's timeline: each state, since when, for how long, by whom and why; then the
    failure of each failed attempt (`-o json`: the timeline only)."""
    client = state.client()
    items = client.history(job_id)
    if fmt == "json":
        output.echo_json(items)
        return
    console = output.console()
    console.print(output.history_table(items))
    errors = client.errors(job_id, limit=50)
    if errors.get("items"):
        console.print("\nFailures, newest first", style="bold")
        console.print(output.errors_table(errors["items"]))


# -- logs -------------------------------------------------------------------------------------


@cli.command()
@click.argument("job_id")
@click.option("-f", "--follow", is_flag=True, help="stream new lines until the run ends")
@click.option(
    "--stream",
    type=click.Choice(["stdout", "stderr", "all"]),
    default="all",
    show_default=True,
    help="all: the job's stdout to stdout and its stderr to stderr",
)
@click.option("--run", "run_id", metavar="RUN_ID", help="a run of the job (default: the latest)")
@click.option(
    "-t", "--timestamps", is_flag=True, help="each line after the time it was written (not with -f)"
)
@click.pass_obj
def logs(
    state: CliState, job_id: str, follow: bool, stream: str, run_id: str | None, timestamps: bool
) -> None:
    """A job's output (of its latest run unless --run)."""
    client = state.client()
    targets = live.log_targets(stream)
    if not follow:
        for name, out in targets:
            out.write(client.logs(job_id, name, run_id, timestamps=timestamps))
            out.flush()
        return
    if len(targets) == 1:
        name, out = targets[0]
        live.pump_log(client, job_id, name, run_id, out)
        return
    live.follow_many(client, job_id, run_id, targets)


# -- auth -------------------------------------------------------------------------------------


@cli.group()
def auth() -> None:
    """Credentials: your token; principals and their tokens (admin)."""


@auth.command("token")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="read the admin token kept in this server data directory",
)
@click.pass_obj
def auth_token(state: CliState, data_dir: Path | None) -> None:
    """Print the token the CLI uses (for raw HTTP: Authorization: Bearer <token>)."""
    if data_dir is not None:
        click.echo(_admin_token(data_dir))
        return
    _, token = resolve(state.server, state.token)
    if not token:
        raise JobfleetError(
            f"no token: no --token, no JOBFLEET_TOKEN and no profile at {profile_path()}. "
            "Run `jobfleet up` on this machine (it saves one), or pass --data-dir DIR of a "
            "running server, or ask your operator for a token."
        )
    click.echo(token)


def _admin_token(data_dir: Path) -> str:
    path = data_dir / "admin-token"
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    except OSError as exc:
        raise JobfleetError(f"cannot read {path}: {exc.strerror}") from exc
    if not token:
        raise JobfleetError(
            f"no admin token in {path}: is {data_dir} the --data-dir of `jobfleet up`? "
            "(a server given JOBFLEET_ADMIN_TOKEN keeps no file: use that value)"
        )
    return token


# -- entry point ------------------------------------------------------------------------------


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="jobfleet")


def _register_commands() -> None:
    from jobfleet.cli import actions, authcmd, fleet, queues, schedules, serve, usage

    serve.register(cli)
    actions.register(cli, OUTPUT)
    authcmd.register(auth, OUTPUT)
    fleet.register(cli, OUTPUT)
    queues.register(cli, OUTPUT)
    usage.register(cli)
    schedules.register(cli)


_register_commands()
