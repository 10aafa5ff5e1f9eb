"""Facts for many people at once: set-based queries per chunk of contacts, never one
query per person. Used by launch (all facts) and by the send-time check (ledger and
frequency cap only)."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Generator, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    Select,
    Text,
    any_,
    bindparam,
    cast,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

from campaigns.campaign_schema import campaigns
from campaigns.people import (
    CONSENT_FACT_COLUMNS,
    CUSTOMER_FACT_COLUMNS,
    channel_set,
    consent_from_values,
    customer_from_values,
)
from campaigns.schema import consent_records, customers
from suppression.ledger import ENTRY_COLUMNS
from suppression.policy import ConsentFacts, CustomerFacts, RegisterFacts
from suppression.register import Snapshot
from suppression.schema import ledger_entries, register_entries

HASH_COLUMNS = ("email_hash", "phone_hash", "name_address_hash")
FETCH = 20_000  # rows per round trip of a streamed query
# The sends that count towards the frequency cap (ALL-8): sent, and those that may have been.
COUNTED_STATES = ("sent", "sending", "unknown")
# A campaign's messages go out before it finishes, but for the sends in flight when it is
# cancelled (a batch's, seconds to minutes) and the reconciliation of those (the stuck
# limit, minutes). A campaign that finished this long before a window began has nothing
# in it, and the frequency cap does not read its recipients at all: the cap costs what
# the window holds, not the whole history of campaigns.
FINISHED_MARGIN = timedelta(days=1)
ADDRESS_COLUMN = {
    "email": "email_hash",
    "sms": "phone_hash",
    "call": "phone_hash",
    "post": "name_address_hash",
}


ID_ARRAY = postgresql.ARRAY(BigInteger)


# What the policy reads of a ledger entry, in `suppression.ledger.Entry` order.
LEDGER_COLUMNS = tuple(ledger_entries.c[name] for name in ENTRY_COLUMNS)


def among(
    bind: Engine | Connection, column: ColumnElement[Any], ids: Sequence[int]
) -> ColumnElement[bool]:
    """`column IN ids`. On PostgreSQL one array parameter: a sub-batch's hundreds of ids
    as separate parameters cost more to compile and parse than the query takes to run."""
    if bind.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=ID_ARRAY))
    return column.in_(list(ids))


def tuples(
    conn: Connection, stmt: Select[Any], params: dict[str, Any] | None = None
) -> Sequence[Any]:
    """All rows of `stmt` as tuples. On PostgreSQL straight from psycopg in binary: for
    the tens of thousands of rows a launch reads per chunk, SQLAlchemy's row processing
    costs more than the query (2.8 s of a million-contact launch's 5 s of consent
    reading). The statement is still SQLAlchemy's, compiled for the connection; with
    `params` for its named bind parameters, compiled once (`_sql`)."""
    if conn.dialect.name != "postgresql":
        return conn.execute(stmt, params).all()
    return [row for rows in _fetch(conn, stmt, FETCH, params=params) for row in rows]


def streamed(
    conn: Connection, stmt: Select[Any], size: int = FETCH
) -> Generator[Sequence[Any], None, None]:
    """The rows of `stmt` in lists of up to `size` tuples, from a server-side cursor on
    PostgreSQL (binary, as `tuples`), else SQLAlchemy's streamed result."""
    if conn.dialect.name != "postgresql":
        yield from conn.execute(stmt, execution_options={"yield_per": size}).partitions()
        return
    name = f"outreach_stream_{next(_cursor_names)}"
    yield from _fetch(conn, stmt, size, name)


_cursor_names = itertools.count()


def fetched(
    conn: Connection, stmt: Select[Any], size: int = FETCH
) -> Generator[Sequence[Any], None, None]:
    """The rows of `stmt` in lists of up to `size` tuples, all sent by the server at once
    (so that it may plan the query in parallel), converted a list at a time."""
    if conn.dialect.name != "postgresql":
        yield from conn.execute(stmt).partitions(size)
        return
    yield from _fetch(conn, stmt, size)


def _fetch(
    conn: Connection,
    stmt: Select[Any],
    size: int,
    name: str = "",
    params: dict[str, Any] | None = None,
) -> Generator[Sequence[Any], None, None]:
    """`stmt` compiled for the connection, run on a psycopg cursor in binary (server-side
    when named), its rows in lists of up to `size` tuples."""
    if params is None:
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        sql, params = compiled.string, compiled.params
    else:
        sql = _sql(stmt, conn.dialect)
    raw = conn.connection.driver_connection
    # An empty name is psycopg's client-side cursor.
    with raw.cursor(name=name, binary=True) as cur:  # type: ignore[union-attr]
        cur.execute(sql, params)
        while rows := cur.fetchmany(size):
            yield rows


@lru_cache(maxsize=32)
def _sql(stmt: Select[Any], dialect: Dialect) -> str:
    """The SQL of a statement built once (at import) with named bind parameters: the
    per-chunk queries of a launch would otherwise be compiled anew a hundred times."""
    return stmt.compile(dialect=dialect).string


_CONSENT_QUERY = select(
    consent_records.c.contact_id, *(consent_records.c[name] for name in CONSENT_FACT_COLUMNS)
)
# On PostgreSQL the rows come as ConsentFacts wants them but for the channels: the
# reference built by the server ('consent:<id>', as `consent_from_values` spells it),
# an aware given_at, true booleans.
_CONSENT_QUERY_PG = select(
    consent_records.c.contact_id,
    literal_column("'consent:'") + cast(consent_records.c.id, Text),
    *(consent_records.c[name] for name in CONSENT_FACT_COLUMNS[1:]),
)


_IN_RANGE = consent_records.c.contact_id.between(bindparam("low"), bindparam("high"))
_IN_ORDER = (consent_records.c.given_at, consent_records.c.id)
_CONSENTS = _CONSENT_QUERY.where(_IN_RANGE).order_by(*_IN_ORDER)
_CONSENTS_PG = _CONSENT_QUERY_PG.where(_IN_RANGE).order_by(*_IN_ORDER)


def consents_by_contact(
    conn: Connection, low: int, high: int
) -> dict[int, tuple[ConsentFacts, ...]]:
    """Each contact's consent records, oldest first (as `campaigns.people.facts` reads a
    person's), for the contacts with ids in [low, high]."""
    out: dict[int, tuple[ConsentFacts, ...]] = {}
    postgresql = conn.dialect.name == "postgresql"
    rows = tuples(conn, _CONSENTS_PG if postgresql else _CONSENTS, {"low": low, "high": high})
    # Positional, and straight into tuples: a chunk is tens of thousands of rows, nearly
    # all of one record each, and every step per row shows in a launch's time (the
    # columns named one by one: a starred name builds a list per row, and the loop
    # written out saves a generator's step; half the cost per row).
    get = out.get
    if not postgresql:
        for cid, *values in rows:
            before, fact = get(cid), consent_from_values(*values)
            out[cid] = (fact,) if before is None else (*before, fact)
        return out
    new, facts = tuple.__new__, ConsentFacts  # the named tuple without its Python __new__
    # from_partner, explicit_call_request, multi_company_form: the last three flags
    for cid, reference, given_at, channels, wording, where, named, source, fp, ecr, mcf in rows:
        before = get(cid)
        fact = new(facts, (
            reference, given_at, channel_set(channels), wording, where, named, source, fp, ecr, mcf,
        ))  # fmt: skip
        out[cid] = (fact,) if before is None else (*before, fact)
    return out


_CUSTOMERS = select(
    customers.c.contact_id, *(customers.c[name] for name in CUSTOMER_FACT_COLUMNS)
).where(customers.c.contact_id.between(bindparam("low"), bindparam("high")))


def customers_by_contact(conn: Connection, low: int, high: int) -> dict[int, CustomerFacts]:
    rows = tuples(conn, _CUSTOMERS, {"low": low, "high": high})
    return {int(contact_id): customer_from_values(*values) for contact_id, *values in rows}


def campaigns_sending_since(since: datetime) -> Select[Any]:
    """The ids of the campaigns that can have sent something at or after `since`: launched,
    and running, paused, or finished no earlier than FINISHED_MARGIN before it."""
    return select(campaigns.c.id).where(
        campaigns.c.launched_at.is_not(None),
        or_(campaigns.c.finished_at.is_(None), campaigns.c.finished_at >= since - FINISHED_MARGIN),
    )


def register_by_contact(
    conn: Connection, snapshot: Snapshot | None, contact_rows: Sequence[Any]
) -> dict[int, RegisterFacts]:
    """Register reservations per contact (phone and name+address hashes)."""
    if snapshot is None:
        return {}
    owners: dict[bytes, list[int]] = defaultdict(list)
    for c in contact_rows:
        for col in ("phone_hash", "name_address_hash"):
            if c[col] is not None:
                owners[bytes(c[col])].append(int(c["id"]))
    flags: dict[int, list[bool]] = {}
    keys = list(owners)
    for start in range(0, len(keys), 5000):
        rows = conn.execute(
            select(
                register_entries.c.key_hash,
                register_entries.c.reserved_phone,
                register_entries.c.reserved_post,
            ).where(
                register_entries.c.snapshot_id == snapshot.id,
                register_entries.c.key_hash.in_(keys[start : start + 5000]),
            )
        )
        for digest, phone, post in rows:
            for cid in owners[bytes(digest)]:
                current = flags.setdefault(cid, [False, False])
                current[0] = current[0] or bool(phone)
                current[1] = current[1] or bool(post)
    return {
        cid: RegisterFacts(
            snapshot.snapshot_date, snapshot.loaded_at, reserved_phone=f[0], reserved_post=f[1]
        )
        for cid, f in flags.items()
    }
