"""The commands that run jobfleet itself: `up` and `db upgrade`."""

from __future__ import annotations

from pathlib import Path

import click

from jobfleet.config import load_settings


@click.command("up")
@click.option("--data-dir", type=click.Path(path_type=Path), help="state, logs and the token")
@click.option("--host", help="address to listen on (default 127.0.0.1)")
@click.option("--port", type=int, help="port to listen on (default 8360)")
@click.option("--database", help="database URL (default: SQLite in the data dir)")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    help="log lines for people (text, default) or JSON lines (config: log_format)",
)
def up(
    data_dir: Path | None,
    host: str | None,
    port: int | None,
    database: str | None,
    config_file: str | None,
    log_format: str | None,
) -> None:
    """Run server, scheduler and a local worker on this machine, in the foreground."""
    # Validate first: a bad configuration is refused before the server's imports load.
    settings = load_settings(
        config_file, host=host, port=port, database=database, log_format=log_format
    )
    from jobfleet.runtime import default_data_dir, exit_now, run_up

    run_up(settings, (data_dir or default_data_dir()).absolute())
    exit_now(0)


@click.group("db")
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.option("--data-dir", type=click.Path(path_type=Path))
@click.option("--database", help="database URL (default: SQLite in the data dir)")
@click.option("--config", "config_file", type=click.Path(dir_okay=False))
def db_upgrade(data_dir: Path | None, database: str | None, config_file: str | None) -> None:
    """Apply the schema migrations (idempotent)."""
    from jobfleet.runtime import database_url, default_data_dir
    from jobfleet.store import Store
    from jobfleet.store.migrate import current_revision

    settings = load_settings(config_file, database=database)
    store = Store(database_url(settings, data_dir or default_data_dir()))
    store.migrate()
    click.echo(f"schema at revision {current_revision(store.writer)} ({store.backend})")
    store.close()


def register(cli: click.Group) -> None:
    cli.add_command(up)
    cli.add_command(db)
