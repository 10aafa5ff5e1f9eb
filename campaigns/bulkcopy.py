"""Binary COPY for the import's big tables on PostgreSQL; `suppression.bulk` elsewhere.

Text COPY formats every value as text in Python and parses it again in the server;
binary COPY with the column types declared costs a third of that per row, which is
most of the client's share of writing a million leads. SQLite goes through
`suppression.bulk.insert_rows` (executemany).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg.types.string import BytesBinaryDumper
from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Date,
    DateTime,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeEngine

from suppression.bulk import insert_rows


def _pg_type(sql_type: TypeEngine[Any]) -> str:
    impl = sql_type
    # Id is BigInteger with an SQLite variant; the variant does not change PostgreSQL's type.
    if isinstance(impl, BigInteger):
        return "int8"
    if isinstance(impl, SmallInteger):
        return "int2"
    if isinstance(impl, Integer):
        return "int4"
    if isinstance(impl, Boolean):
        return "bool"
    if isinstance(impl, DateTime):
        return "timestamptz" if impl.timezone else "timestamp"
    if isinstance(impl, Date):
        return "date"
    if isinstance(impl, LargeBinary):
        return "bytea"
    if isinstance(impl, String | Text):
        return "text"
    raise TypeError(f"no binary COPY type for {sql_type!r}")


def plain_bytes(cursor: psycopg.Cursor[Any]) -> None:
    """A binary COPY that declares its types by name dumps `bytea` with what psycopg
    registered last for that type: its DB-API module's dumper, pure Python (to accept its
    `Binary` wrapper), a call per value. Our values are plain bytes: on this cursor,
    psycopg's C dumper of bytes does it."""
    cursor.adapters.register_dumper(None, BytesBinaryDumper)


def copy_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> int:
    """Insert tuples in `columns` order inside the caller's transaction; returns the count."""
    if conn.dialect.name != "postgresql":
        return insert_rows(conn, table, columns, rows)
    types = [_pg_type(table.c[name].type) for name in columns]
    raw = conn.connection.driver_connection
    count = 0
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    try:
        with raw.cursor() as cur:  # type: ignore[union-attr]
            plain_bytes(cur)
            with cur.copy(statement) as copy:
                copy.set_types(types)
                write = copy.write_row
                for row in rows:
                    write(row)
                    count += 1
    except psycopg.Error as exc:
        # As SQLAlchemy raises it for its own statements (IntegrityError for a unique
        # violation), so that callers catch one family of errors.
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc
    return count
