"""Binary COPY for the import's big tables on PostgreSQL; `suppression.bulk` elsewhere.

Text COPY formats every value as text in Python and parses it again in the server;
binary COPY with the column types declared costs a third of that per row, which is
most of the client's share of writing a million leads. SQLite goes through
`suppression.bulk.insert_rows` (executemany).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.copy import Copy, FileWriter
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
    with _copy_in(conn, table, columns) as copy:
        return _write_rows(copy, table, columns, rows)


class PreparedCopy:
    """Rows formatted for a COPY now, in the calling thread, and written when called.

    The import formats a batch on its reading thread and hands the bytes to its writer
    thread, which then mostly waits for the server (libpq sends without the GIL).
    When the writer thread formatted the rows itself, it held the GIL the reading
    thread needs for a tenth of the import's time. On SQLite the rows are kept and
    inserted when called.
    """

    __slots__ = ("_columns", "_conn", "_data", "_rows", "_table", "count")

    def __init__(
        self,
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        rows: Iterable[tuple[Any, ...]],
    ) -> None:
        self._conn, self._table, self._columns = conn, table, columns
        self._data = b""
        self._rows: list[tuple[Any, ...]] = []
        if conn.dialect.name != "postgresql":
            self._rows = list(rows)
            self.count = len(self._rows)
            return
        out = io.BytesIO()
        # psycopg's documented way to format COPY data without sending it: a Copy with
        # a FileWriter, on a cursor that runs nothing (the connection may be busy with
        # another thread's COPY: making a cursor does no I/O).
        with conn.connection.driver_connection.cursor() as cur:  # type: ignore[union-attr]
            plain_bytes(cur)
            with Copy(cur, binary=True, writer=FileWriter(out)) as copy:
                self.count = _write_rows(copy, table, columns, rows)
        self._data = out.getvalue()

    def __call__(self) -> int:
        """Insert the rows inside the connection's transaction; returns their count."""
        if self._conn.dialect.name != "postgresql":
            return insert_rows(self._conn, self._table, self._columns, self._rows)
        with _copy_in(self._conn, self._table, self._columns) as copy:
            copy.write(self._data)
        return self.count


def _write_rows(
    copy: Copy, table: Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> int:
    copy.set_types([_pg_type(table.c[name].type) for name in columns])
    write = copy.write_row
    count = 0
    for row in rows:
        write(row)
        count += 1
    return count


@contextmanager
def _copy_in(conn: Connection, table: Table, columns: Sequence[str]) -> Iterator[Copy]:
    """A binary COPY into `table` on the connection, its errors raised as SQLAlchemy's."""
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    try:
        with conn.connection.driver_connection.cursor() as cur:  # type: ignore[union-attr]
            plain_bytes(cur)
            with cur.copy(statement) as copy:
                yield copy
    except psycopg.Error as exc:
        # As SQLAlchemy raises it for its own statements (IntegrityError for a unique
        # violation), so that callers catch one family of errors.
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc
