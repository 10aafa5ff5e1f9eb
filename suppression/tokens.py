"""Unsubscribe tokens: unforgeable, about 20 characters (short enough for SMS), never expire.

A token names either a row of `unsubscribe_tokens` (tokens issued one by one) or a
campaign recipient (the link in a campaign's message: a launch of a million people
writes no token rows, the recipient row it writes anyway is the token's target). Both
keep only the keyed hash of the identity, so a token keeps working after the person's
erasure (ALL-4). The MAC (under a different purpose for each kind, so one kind cannot
pass for the other) makes guessing a valid token as hard as guessing 80 random bits;
a forged or unknown token is refused before the database is asked.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from sqlalchemy import Connection, insert, select

from suppression.keys import Hasher, KeyedHash
from suppression.schema import unsubscribe_tokens

MAC_BYTES = 10
_PURPOSE = "unsubscribe-token"
_RECIPIENT_PURPOSE = "recipient-unsubscribe-token"
# The length byte's high bit marks a recipient token (ids are at most 8 bytes long).
_RECIPIENT_FLAG: Final = 0x80
TOKEN: Final = "token"
RECIPIENT: Final = "recipient"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{4,64}")


@dataclass(frozen=True, slots=True)
class TokenRef:
    """What a genuine token names: a token row or a campaign recipient, by id."""

    kind: Literal["token", "recipient"]
    id: int

    @property
    def ref(self) -> str:
        """The evidence reference of what the token names ("token:12", "recipient:34")."""
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True, slots=True)
class TokenTarget:
    token_id: int  # the id of the token row, or of the recipient for a recipient token
    key_hash: bytes
    key_id: str
    identity_kind: str
    channel: str
    campaign_id: int | None
    kind: Literal["token", "recipient"] = TOKEN

    @property
    def ref(self) -> str:
        return TokenRef(self.kind, self.token_id).ref


def _encode_id(token_id: int) -> bytes:
    return token_id.to_bytes(max(1, (token_id.bit_length() + 7) // 8), "big")


def _encode(hasher: Hasher, purpose: str, flag: int, value: int) -> str:
    body = _encode_id(value)
    mac = hasher.sign(purpose, body)[:MAC_BYTES]
    # One length byte keeps the split unambiguous; base64url without padding is URL-safe.
    return base64.urlsafe_b64encode(bytes([len(body) | flag]) + body + mac).rstrip(b"=").decode()


def encode(hasher: Hasher, token_id: int) -> str:
    """The token of a row of `unsubscribe_tokens`."""
    return _encode(hasher, _PURPOSE, 0, token_id)


def encode_recipient(hasher: Hasher, recipient_id: int) -> str:
    """The token of a campaign recipient: the link in the message sent to them."""
    return _encode(hasher, _RECIPIENT_PURPOSE, _RECIPIENT_FLAG, recipient_id)


def for_recipient(hasher: Hasher, recipient_id: int, token_id: int | None) -> str:
    """The token in a campaign recipient's message: the recipient's own, or, for one
    launched before recipient tokens (migration 0005), its token row's."""
    if token_id is not None:
        return encode(hasher, token_id)
    return encode_recipient(hasher, recipient_id)


def decode(hasher: Hasher, token: str) -> int | None:
    """The id of the token row, or None for anything forged, truncated or malformed, and
    for a recipient token."""
    found = decode_ref(hasher, token)
    return found.id if found is not None and found.kind == TOKEN else None


def decode_ref(hasher: Hasher, token: str) -> TokenRef | None:
    """What the token names, or None for anything forged, truncated or malformed."""
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
    recipient = bool(raw[0] & _RECIPIENT_FLAG)
    size = raw[0] & ~_RECIPIENT_FLAG
    body, mac = raw[1 : 1 + size], raw[1 + size :]
    if size == 0 or size > 8 or len(body) != size or len(mac) != MAC_BYTES:
        return None
    if not hasher.verify(_RECIPIENT_PURPOSE if recipient else _PURPOSE, body, mac):
        return None
    return TokenRef(RECIPIENT if recipient else TOKEN, int.from_bytes(body, "big"))


def issue(
    conn: Connection,
    hasher: Hasher,
    key: KeyedHash,
    identity_kind: str,
    channel: str,
    campaign_id: int | None = None,
    *,
    now: datetime,
) -> str:
    token_id = conn.execute(
        insert(unsubscribe_tokens)
        .values(
            key_hash=key.digest,
            key_id=key.key_id,
            identity_kind=identity_kind,
            channel=channel,
            campaign_id=campaign_id,
            created_at=now,
        )
        .returning(unsubscribe_tokens.c.id)
    ).scalar_one()
    return encode(hasher, int(token_id))


def resolve(conn: Connection, hasher: Hasher, token: str) -> TokenTarget | None:
    """The target of a token row's token (campaigns.optouts.unsubscribe.find resolves
    recipient tokens too)."""
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
