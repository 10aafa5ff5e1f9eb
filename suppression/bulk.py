"""Bulk writes that stay fast on both stores: COPY on PostgreSQL, executemany on SQLite.

SQLAlchemy's executemany is correct on both but an order of magnitude slower than
COPY for millions of rows, which the register load and the screening need.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table

CHUNK = 20_000


def insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> int:
    """Insert tuples in `columns` order inside the caller's transaction; returns the count."""
    if conn.dialect.name == "postgresql":
        return _copy(conn, table.name, columns, rows)
    stmt = table.insert()
    count = 0
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(dict(zip(columns, row, strict=True)))
        if len(batch) >= CHUNK:
            conn.execute(stmt, batch)
            count += len(batch)
            batch = []
    if batch:
        conn.execute(stmt, batch)
        count += len(batch)
    return count


def _copy(
    conn: Connection, table_name: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> int:
    raw = conn.connection.driver_connection
    count = 0
    column_list = ", ".join(columns)
    cur = raw.cursor()  # type: ignore[union-attr]
    with cur, cur.copy(f"COPY {table_name} ({column_list}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count
