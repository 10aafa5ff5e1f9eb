"""The database engine and migrations (the composition root owns both)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

import campaigns.campaign_schema
import campaigns.optouts.schema
import campaigns.schema  # noqa: F401
from suppression.schema import metadata
from worker.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"

__all__ = ["MIGRATIONS", "engine_for", "metadata", "upgrade"]


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


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
