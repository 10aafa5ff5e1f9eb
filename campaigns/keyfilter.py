"""Which identity hashes may already belong to a contact, without asking the database.

A partner file of a million rows brings two million emails and phones, nearly all of
them new. Looking each one up in the contacts' unique indexes cost the database
about as much as writing the contact. `KeyFilter` is a Bloom filter with one hash
function over the keyed hashes: a clear bit proves that no contact held the hash
when the filter was built (or was given it since), a set bit only says "ask the
database". The hashes are HMAC-SHA256 output, uniform bytes, so their first four
bytes are the bit position; no further hashing is needed.

It is a snapshot: a contact another transaction commits later is not in it. The
import's writes then fail on the contacts' unique index instead of merging, and
`campaigns.intake` imports the file again without a filter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from sqlalchemy import Connection, func, select

from campaigns.schema import contacts

_MIN_BITS_LOG2: Final = 20  # 128 KB
_MAX_BITS_LOG2: Final = 32  # 512 MB: four bytes of hash address it
_BITS_PER_KEY: Final = 32  # about 3 % false positives
_READ_CHUNK: Final = 50_000


class KeyFilter:
    """A set of 32-byte keyed hashes that may answer "maybe" for one it does not hold."""

    __slots__ = ("_bits", "_mask")

    def __init__(self, expected_keys: int) -> None:
        log2 = _MIN_BITS_LOG2
        while log2 < _MAX_BITS_LOG2 and (1 << log2) < expected_keys * _BITS_PER_KEY:
            log2 += 1
        self._mask = (1 << log2) - 1
        self._bits = bytearray(1 << (log2 - 3))

    def add(self, key: bytes) -> None:
        at = int.from_bytes(key[:4], "little") & self._mask
        self._bits[at >> 3] |= 1 << (at & 7)

    def add_all(self, keys: Iterable[bytes | None]) -> None:
        bits, mask = self._bits, self._mask
        for key in keys:
            if key is not None:
                at = int.from_bytes(key[:4], "little") & mask
                bits[at >> 3] |= 1 << (at & 7)

    def add_positions(self, positions: Iterable[int]) -> None:
        """Add keys by their first four bytes read as a little-endian integer."""
        bits, mask = self._bits, self._mask
        for at in positions:
            at &= mask
            bits[at >> 3] |= 1 << (at & 7)

    def screen(self, keys: Iterable[bytes]) -> list[bytes]:
        """The keys it may hold (a key twice in `keys` is a "maybe" the second time);
        it holds all of them afterwards."""
        bits, mask = self._bits, self._mask
        maybe = []
        for key in keys:
            at = int.from_bytes(key[:4], "little") & mask
            byte, bit = at >> 3, 1 << (at & 7)
            if bits[byte] & bit:
                maybe.append(key)
            else:
                bits[byte] |= bit
        return maybe

    def __contains__(self, key: bytes) -> bool:
        at = int.from_bytes(key[:4], "little") & self._mask
        return bool(self._bits[at >> 3] >> (at & 7) & 1)


def contacts_upper_bound(conn: Connection) -> int:
    """At most how many contacts there are (ids are never reused): one index probe."""
    return int(conn.execute(select(func.coalesce(func.max(contacts.c.id), 0))).scalar_one())


# PostgreSQL reads each hash's bit position itself (its first four bytes, little-endian):
# eight bytes a key to send and no slicing here, a sixth of the client's time.
_PG_POSITIONS: Final = """
SELECT get_byte(h, 0) | (get_byte(h, 1) << 8) | (get_byte(h, 2) << 16)
       | (get_byte(h, 3)::int8 << 24)
FROM (SELECT email_hash FROM contacts UNION ALL SELECT phone_hash FROM contacts) AS k (h)
WHERE h IS NOT NULL
"""


def load_contact_keys(conn: Connection, expected_new: int) -> KeyFilter:
    """A filter holding every contact's email and phone hash, with room for `expected_new`
    more keys (what the import will add)."""
    found = KeyFilter(2 * contacts_upper_bound(conn) + expected_new)
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        with raw.cursor(name="contact_key_positions", binary=True) as cur:  # type: ignore[union-attr]
            cur.execute(_PG_POSITIONS)
            while part := cur.fetchmany(_READ_CHUNK):
                found.add_positions(at for (at,) in part)
        return found
    query = select(contacts.c.email_hash, contacts.c.phone_hash).execution_options(
        stream_results=True, max_row_buffer=_READ_CHUNK
    )
    for rows in conn.execute(query).partitions(_READ_CHUNK):
        found.add_all(key for row in rows for key in row)
    return found
