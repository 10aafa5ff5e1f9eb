"""A launch's input and output streams on PostgreSQL: it reads the audience's facts on a
connection of its own while it streams the recipient rows into one COPY on the
caller's connection (the caller's transaction keeps the launch atomic). On SQLite,
or when the caller's transaction has written already, both go through the caller's
connection, the rows in chunks between the reads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import Connection, text

from campaigns.bulkcopy import plain_bytes
from campaigns.campaign_schema import recipients
from suppression.bulk import insert_rows

CHUNK = 20_000  # rows per insert when the rows cannot be streamed


# What a launch writes per audience member (key_id only for the allowed: it makes the
# recipient row the target of the unsubscribe token in their message).
RECIPIENT_COLUMNS = (
    "campaign_id", "contact_id", "key_hash", "key_id", "decision", "rule", "basis",
    "evidence", "state", "batch_no", "updated_at",
)  # fmt: skip
RECIPIENT_TYPES = (
    "int8", "int8", "bytea", "varchar", "varchar", "varchar", "varchar",
    "text", "varchar", "int4", "timestamptz",
)  # fmt: skip


@contextmanager
def reading_connection(conn: Connection) -> Iterator[Connection]:
    """Where a launch reads the audience's facts. On PostgreSQL, when the caller's
    transaction has written nothing yet, a second connection in one REPEATABLE READ,
    READ ONLY snapshot: the launch streams its recipients into one COPY on the caller's
    connection while it reads on this one, so the server stores rows while Python
    decides (two cores instead of one, in turns). It sees what the caller's transaction
    sees: everything committed. Otherwise (SQLite, or a transaction that wrote) the
    caller's connection itself."""
    if (
        conn.dialect.name != "postgresql"
        or conn.execute(text("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")).scalar_one()
    ):
        yield conn
        return
    with conn.engine.connect() as reader:
        reader = reader.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
        with reader.begin():
            # Compiling the ledger joins with LLVM takes a second and saves nothing on
            # queries that run once; hash joins of a million contacts fit in 64 MB
            # instead of spilling to disk in 16 batches.
            reader.execute(text("SET LOCAL jit = off"))
            reader.execute(text("SET LOCAL work_mem = '64MB'"))
            # Times in UTC: psycopg then gives them Python's own UTC, not the server's
            # zone as a ZoneInfo ('Etc/UTC', 'Europe/Oslo'), and the policy compares
            # each consent's time with the launch's twice, at a seventh of the cost or less (a
            # comparison across two zones asks both for their offset). The moments are
            # the same either way; no query here turns a time into a day.
            reader.execute(text("SET LOCAL TimeZone = 'UTC'"))
            yield reader


class RecipientWriter:
    """Recipient rows into the caller's transaction: one COPY for the whole launch when
    the reading happens elsewhere, else in chunks between the reads."""

    def __init__(self, conn: Connection, streaming: bool) -> None:
        self._conn = conn
        self._pending: list[tuple[Any, ...]] = []
        self._copy: Any = None
        self._stack = ExitStack()
        if streaming:
            raw = conn.connection.driver_connection
            cursor = self._stack.enter_context(raw.cursor())  # type: ignore[union-attr]
            plain_bytes(cursor)  # a million key hashes per launch
            # Queued: the rows go to the server from a thread of psycopg's while this one
            # goes on deciding, instead of waiting whenever the socket is full.
            self._copy = self._stack.enter_context(
                cursor.copy(
                    f"COPY recipients ({', '.join(RECIPIENT_COLUMNS)}) FROM STDIN (FORMAT BINARY)",
                    writer=QueuedLibpqWriter(cursor),
                )
            )
            # Binary: a third of the text format's cost per row, on both sides.
            self._copy.set_types(RECIPIENT_TYPES)

    def add(self, row: tuple[Any, ...]) -> None:
        if self._copy is not None:
            self._copy.write_row(row)
            return
        self._pending.append(row)
        if len(self._pending) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        insert_rows(self._conn, recipients, RECIPIENT_COLUMNS, self._pending)
        self._pending.clear()

    def __enter__(self) -> RecipientWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        # An error leaves the COPY failed, and with it the caller's transaction.
        self._stack.__exit__(*exc)  # type: ignore[arg-type]
        if exc[0] is None and self._pending:
            self.flush()
