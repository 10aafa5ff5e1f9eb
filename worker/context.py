"""What every process builds once: settings, engine, hasher, policy config."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from suppression.errors import ConfigurationError
from worker import settings

if TYPE_CHECKING:  # imported where used: a command that needs no store loads no SQLAlchemy
    from sqlalchemy import Engine

    from suppression.keys import Hasher
    from suppression.policy import PolicyConfig


@dataclass
class Context:
    settings: settings.Settings

    @classmethod
    def load(cls) -> Context:
        """The context of a command; `close_loaded` closes it when the command ends."""
        ctx = cls(settings.load())
        _LOADED.append(ctx)
        return ctx

    def close(self) -> None:
        """Give back the store's connections, if any were opened."""
        if "engine" in self.__dict__:
            self.engine.dispose()

    @cached_property
    def engine(self) -> Engine:
        """The store, once it is known that it is migrated (worker.db.check_revision, no
        Alembic) and that every key it holds digests under is configured
        (campaigns.keyring.check: a ConfigurationError names the key id)."""
        from sqlalchemy import inspect

        from campaigns import installation, keyring
        from worker import db

        engine = db.engine(self.settings)
        try:
            with engine.begin() as conn:
                db.check_revision(conn)
                keyring.check(conn, self.hasher, self.clock())
                if inspect(conn).has_table("installation"):  # else `db upgrade` to come
                    installation.ensure(conn)
        except BaseException:
            engine.dispose()
            raise
        return engine

    @cached_property
    def hasher(self) -> Hasher:
        return self.settings.hasher()

    @cached_property
    def policy(self) -> PolicyConfig:
        return self.settings.policy()

    @cached_property
    def clock(self) -> Callable[[], datetime]:
        """The one clock of this process: the domain takes every `now` from it. Built
        once, so that a demo clock runs instead of standing still at its start."""
        return make_clock(self.settings.demo_now, self.settings.demo_now_at)


_LOADED: list[Context] = []


def loaded_settings() -> settings.Settings | None:
    """The settings of the latest context `Context.load` made and `close_loaded` has not
    closed yet: what the CLI names when a command fails (the store's address)."""
    return _LOADED[-1].settings if _LOADED else None


def close_loaded() -> None:
    """Close every context `Context.load` made: the CLI calls it after each command, so
    that a process that runs many commands (the demo, the tests) keeps no pool open."""
    while _LOADED:
        _LOADED.pop().close()


def make_clock(demo_now: str | None, demo_now_at: float | None = None) -> Callable[[], datetime]:
    """The real time, or a clock that starts at OUTREACH_DEMO_NOW and then runs at the
    real pace (the demo, and tests of whole processes): from OUTREACH_DEMO_NOW_AT, the
    machine's monotonic clock (shared by every process of the machine) at which
    OUTREACH_DEMO_NOW held, when that is set (so that processes started minutes apart
    agree), else from the clock's first use. The only place in the application that reads
    the wall clock (tests/unit/test_wall_clock.py holds it)."""
    if not demo_now:
        return lambda: datetime.now(UTC)  # wall-clock: the composition root's clock
    # In UTC, as the real clock's: a store that keeps times without their zone (SQLite)
    # then holds UTC whichever clock wrote them.
    fixed = _instant("OUTREACH_DEMO_NOW", demo_now).astimezone(UTC)
    if demo_now_at is not None:
        return lambda: fixed + timedelta(seconds=time.monotonic() - demo_now_at)
    started = datetime.now(UTC)  # wall-clock: the demo clock's start
    return lambda: fixed + (datetime.now(UTC) - started)  # wall-clock: runs at real pace


def _instant(setting: str, value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigurationError(setting, "must be an ISO 8601 time with an offset") from None
    if moment.tzinfo is None:
        raise ConfigurationError(setting, "must carry a UTC offset")
    return moment
