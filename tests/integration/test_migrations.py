"""The migrations build exactly the schema the code declares, on both stores."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

import campaigns.campaign_schema
import campaigns.optouts.schema
import campaigns.schema  # noqa: F401 - every module that adds tables to the metadata
from suppression.schema import metadata

pytestmark = pytest.mark.integration


def test_the_migrated_store_matches_the_declared_tables(engine: Engine) -> None:
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    # A diff is a tuple (or a list of tuples for column changes) naming what differs.
    assert diffs == [], "\n".join(str(d) for d in diffs)
