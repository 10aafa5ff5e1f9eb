from __future__ import annotations

import click

from worker.context import Context
from worker.output import EXIT_USAGE, Summaries, console, fail


@click.group("db", cls=Summaries)
def db() -> None:
    """The database: create or migrate."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def upgrade(revision: str) -> None:
    """Create the database or migrate it to the latest schema (SQLite and PostgreSQL)."""
    from alembic.util import CommandError

    from worker import db as database

    ctx = Context.load()
    try:
        database.upgrade(ctx.settings.sqlalchemy_url, revision)
    except CommandError as exc:  # an unknown --revision, say: Alembic's message names it
        fail(f"--revision: {exc}", EXIT_USAGE)
    console.print(f"database at revision {revision}")
