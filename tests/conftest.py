"""Shared fixtures: the test clock, a migrated store on SQLite and on PostgreSQL, the
hasher, a CLI runner; and the rule that nothing is skipped in CI."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, text

from suppression.keys import Hasher
from suppression.policy import PolicyConfig
from suppression.schema import metadata
from tests import clock as test_clock
from tests.services import throwaway_postgres
from worker import db

SECRET = "test-only-secret-key-0123456789abcdef"
ORG_NAME = "Trygg Hjem Alarm AS"
ORG_NUMBER = "999999999"


@pytest.fixture
def clock() -> test_clock.TestClock:
    """The test clock, at the suite's instant (tests.clock.NOW), fresh for each test."""
    return test_clock.TestClock()


@pytest.fixture(scope="session")
def hasher() -> Hasher:
    return Hasher(SECRET.encode())


@pytest.fixture(scope="session")
def policy_config() -> PolicyConfig:
    return PolicyConfig(organisation_name=ORG_NAME, organisation_number=ORG_NUMBER)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "outreach.db"
    db.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with throwaway_postgres() as url:
        db.upgrade(url)
        yield url


def _truncate_all(engine: Engine) -> None:
    # The installation row stays: a store always has one (migration 0009).
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables if t.name != "installation")
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[str]:
    """A migrated, empty store: each test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "outreach.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    url: str = request.getfixturevalue("postgres_url")
    engine = db.engine_for(url)
    _truncate_all(engine)
    engine.dispose()
    yield url


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    eng = db.engine_for(store_url)
    yield eng
    eng.dispose()


class Cli:
    """Runs `outreach` in-process with the environment a user would set."""

    def __init__(self, url: str) -> None:
        self.env = {
            "DATABASE_URL": url,
            "OUTREACH_SECRET_KEY": SECRET,
            "OUTREACH_ORGANISATION_NAME": ORG_NAME,
            "OUTREACH_ORGANISATION_NUMBER": ORG_NUMBER,
            # The commands' clock starts at the suite's instant, not at the wall clock.
            "OUTREACH_DEMO_NOW": test_clock.NOW.isoformat(),
        }

    def __call__(self, *args: str) -> Result:
        from worker.cli import main

        return CliRunner().invoke(main, list(args), env=self.env, catch_exceptions=False)


@pytest.fixture
def cli(store_url: str) -> Cli:
    return Cli(store_url)


def pytest_report_header() -> str:
    return f"test clock: {test_clock.NOW.isoformat()} (set {test_clock.ENV} to travel)"
