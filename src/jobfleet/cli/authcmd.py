"""`jobfleet auth create-token | list | revoke`: principals and their tokens (admin only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from jobfleet.access import Verb
from jobfleet.cli import output

if TYPE_CHECKING:
    from jobfleet.cli.main import CliState

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
VERBS = [v.value for v in Verb]


def register(auth: click.Group, opt: Decorator) -> None:
    """Add the commands to the `auth` group; `opt` is the shared `-o json|table` option."""

    @auth.command("create-token")
    @click.argument("name")
    @click.option("--queue", "queues", multiple=True, metavar="Q", help="a queue ('*': all)")
    @click.option(
        "--verb",
        "verbs",
        multiple=True,
        type=click.Choice(VERBS),
        help="a verb on those queues (default: all five)",
    )
    @click.option("--admin", is_flag=True, help="every verb on every queue, and token admin")
    @click.option("--worker", is_flag=True, help="a token for `jobfleet worker` only")
    @click.option(
        "--worker-name",
        metavar="W",
        help="bind the worker token to worker name W: it may act only as W (implies --worker)",
    )
    @opt
    @click.pass_obj
    def create_token(
        state: CliState,
        name: str,
        queues: tuple[str, ...],
        verbs: tuple[str, ...],
        admin: bool,
        worker: bool,
        worker_name: str | None,
        fmt: str,
    ) -> None:
        """Create a token for principal NAME (made if new) and print it, once."""
        worker = worker or worker_name is not None
        if worker and (queues or verbs or admin):
            raise click.UsageError("--worker takes no --queue, --verb or --admin")
        if verbs and not queues:
            raise click.UsageError("--verb needs at least one --queue (use --queue '*' for all)")
        if not (queues or admin or worker):
            raise click.UsageError("give --queue Q [--verb V]..., --admin or --worker")
        made = state.client().create_token(
            name, queues, verbs, admin=admin, worker=worker, worker_name=worker_name
        )
        if fmt == "json":
            output.echo_json(made)
            return
        click.echo(made["token"])
        click.echo(
            f"token {made['id']} of {_describe(made['principal'])}; "
            "it is shown only now: keep it safe",
            err=True,
        )

    @auth.command("list")
    @opt
    @click.pass_obj
    def list_principals(state: CliState, fmt: str) -> None:
        """Principals, their grants and their tokens (ids and prefixes, never the secrets)."""
        items = state.client().principals()
        if fmt == "json":
            output.echo_json(items)
            return
        output.console().print(principals_table(items))

    @auth.command("revoke")
    @click.argument("token_id")
    @opt
    @click.pass_obj
    def revoke(state: CliState, token_id: str, fmt: str) -> None:
        """Revoke the token TOKEN_ID (see `jobfleet auth list`); it stops working at once."""
        answer = state.client().revoke_token(token_id)
        if fmt == "json":
            output.echo_json(answer)
        else:
            click.echo(f"revoked {token_id}")


def _describe(principal: dict[str, Any]) -> str:
    name = principal["name"]
    if principal["kind"] == "worker":
        bound = principal.get("worker_name")
        return f"worker principal {name}" + (f", bound to worker {bound}" if bound else "")
    if principal["admin"]:
        return f"admin principal {name}"
    return f"principal {name} ({_grants(principal['grants'])})"


def _grants(grants: list[dict[str, str]]) -> str:
    by_queue: dict[str, list[str]] = {}
    for g in grants:
        by_queue.setdefault(g["queue"], []).append(g["verb"])
    parts = []
    for queue, verbs in sorted(by_queue.items()):
        shown = "all" if set(verbs) == set(VERBS) else ",".join(sorted(verbs))
        parts.append(f"{queue}: {shown}")
    return "; ".join(parts) or "-"


def principals_table(items: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("NAME", "KIND", "GRANTS", "TOKENS (id prefix)"):
        table.add_column(col)
    for p in items:
        kind = "admin" if p["admin"] else p["kind"]
        tokens = "\n".join(f"{t['id']} {t['prefix']}…" for t in p["tokens"]) or "-"
        grants = "every queue" if p["admin"] else _grants(p["grants"])
        table.add_row(p["name"], kind, grants, tokens)
    return table
