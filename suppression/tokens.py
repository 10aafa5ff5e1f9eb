"""Unsubscribe tokens: unforgeable, about 20 characters (short enough for SMS), never expire.

A token names a row of `unsubscribe_tokens`, which keeps only the keyed hash of the
identity, so a token keeps working after the person's erasure (ALL-4). The MAC
makes guessing a valid token as hard as guessing 80 random bits; a forged or
unknown token is refused before the database is asked.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, insert, select

from suppression.keys import Hasher, KeyedHash
from suppression.schema import unsubscribe_tokens

MAC_BYTES = 10
_PURPOSE = "unsubscribe-token"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{4,64}")


@dataclass(frozen=True, slots=True)
class TokenTarget:
    token_id: int
    key_hash: bytes
    key_id: str
    identity_kind: str
    channel: str
    campaign_id: int | None


def _encode_id(token_id: int) -> bytes:
    return token_id.to_bytes(max(1, (token_id.bit_length() + 7) // 8), "big")


def encode(hasher: Hasher, token_id: int) -> str:
    body = _encode_id(token_id)
    mac = hasher.sign(_PURPOSE, body)[:MAC_BYTES]
    # One length byte keeps the split unambiguous; base64url without padding is URL-safe.
    return base64.urlsafe_b64encode(bytes([len(body)]) + body + mac).rstrip(b"=").decode()


def decode(hasher: Hasher, token: str) -> int | None:
    """The token id, or None for anything forged, truncated or malformed."""
    # The base64 decoder skips characters outside its alphabet and accepts "+" and "/":
    # only the exact spelling we issue is a token.
    if not _TOKEN.fullmatch(token):
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    if not raw or base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != token:
        return None
    size = raw[0]
    body, mac = raw[1 : 1 + size], raw[1 + size :]
    if size == 0 or len(body) != size or len(mac) != MAC_BYTES:
        return None
    if not hasher.verify(_PURPOSE, body, mac):
        return None
    return int.from_bytes(body, "big")


def issue(
    conn: Connection,
    hasher: Hasher,
    key: KeyedHash,
    identity_kind: str,
    channel: str,
    campaign_id: int | None = None,
) -> str:
    token_id = conn.execute(
        insert(unsubscribe_tokens)
        .values(
            key_hash=key.digest,
            key_id=key.key_id,
            identity_kind=identity_kind,
            channel=channel,
            campaign_id=campaign_id,
            created_at=datetime.now(UTC),
        )
        .returning(unsubscribe_tokens.c.id)
    ).scalar_one()
    return encode(hasher, int(token_id))


def resolve(conn: Connection, hasher: Hasher, token: str) -> TokenTarget | None:
    token_id = decode(hasher, token)
    if token_id is None:
        return None
    row = conn.execute(
        select(unsubscribe_tokens).where(unsubscribe_tokens.c.id == token_id)
    ).first()
    if row is None:
        return None
    m = row._mapping
    return TokenTarget(
        token_id=token_id,
        key_hash=bytes(m["key_hash"]),
        key_id=m["key_id"],
        identity_kind=m["identity_kind"],
        channel=m["channel"],
        campaign_id=m["campaign_id"],
    )
