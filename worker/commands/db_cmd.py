from __future__ import annotations

import click

from worker import db as database
from worker.context import Context
from worker.output import console


@click.group("db")
def db() -> None:
    """The database: create or migrate."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def upgrade(revision: str) -> None:
    """Create the database or migrate it to the latest schema (SQLite and PostgreSQL)."""
    ctx = Context.load()
    database.upgrade(ctx.settings.sqlalchemy_url, revision)
    console.print(f"database at revision {revision}")
