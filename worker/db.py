"""The database engine and migrations (the composition root owns both)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text

import campaigns.campaign_schema
import campaigns.optouts.schema
import campaigns.schema  # noqa: F401
from suppression.errors import ConfigurationError
from suppression.schema import metadata
from worker.settings import Settings

if TYPE_CHECKING:  # Alembic is imported by the commands that migrate, not by every command
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# A migration's file name starts with its revision id, and the ids count up (0001, 0002...).
_REVISION_FILE = re.compile(r"^(\d{4})_\w+\.py$")

__all__ = ["MIGRATIONS", "check_revision", "engine_for", "head_revision", "metadata", "upgrade"]


def engine_for(url: str, **kwargs: object) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            # What a delete or an update frees is overwritten, not left in free pages:
            # an erasure (ALL-4) leaves no plaintext in the file (the WAL is truncated
            # after it, campaigns.people.forget's caller).
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def after_erasure(engine: Engine) -> None:
    """After an erasure's commit: SQLite's write-ahead log still holds the pages as they
    were; a checkpoint writes them into the file (where secure_delete zeroed what the
    erasure freed) and truncates the log. PostgreSQL's dead row versions go at the next
    VACUUM (docs/operations.md)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def engine(settings: Settings) -> Engine:
    return engine_for(settings.sqlalchemy_url)


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest migration's revision id, from the file names (no Alembic: reading its
    script directory costs more than most commands; tests hold it to Alembic's head)."""
    found = [
        m.group(1)
        for p in (MIGRATIONS / "versions").iterdir()
        if (m := _REVISION_FILE.match(p.name))
    ]
    return max(found)


def check_revision(conn: Connection) -> None:
    """Refuse a store that is not migrated as far as this code needs (`outreach db upgrade`
    to run), with a ConfigurationError instead of a missing table halfway through a
    command. Two small queries; a store migrated further (a newer release) is accepted."""
    head = head_revision()
    if not inspect(conn).has_table("alembic_version"):
        current = None
    else:
        current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if current is None or (str(current).isdigit() and str(current) < head):
        raise ConfigurationError(
            "DATABASE_URL",
            f"the store is at revision {current or 'none'}, this version needs {head}: "
            "run `outreach db upgrade`",
        )


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)
