"""Unsubscribe tokens: unforgeable, about 20 characters (short enough for SMS), never expire.

A token names either a row of `unsubscribe_tokens` (tokens issued one by one) or a
campaign recipient (the link in a campaign's message: a launch of a million people
writes no token rows, the recipient row it writes anyway is the token's target). Both
keep only the keyed hash of the identity, so a token keeps working after the person's
erasure (ALL-4). The MAC (under a different purpose for each kind, so one kind cannot
pass for the other) makes guessing a valid token as hard as guessing 80 random bits;
a forged or unknown token is refused before the database is asked.

The MAC also covers this database's installation id (`Signer`): ids are only unique
within one database, and a token from another one (a staging store under the same key,
a store rebuilt from scratch) would otherwise name whoever holds that id here. Tokens
issued before that (migration 0009) carry no installation bit and keep working for the
ids issued then (`Installation.legacy_*_max`); none is accepted above them.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, insert, select

from suppression.errors import ConfigurationError
from suppression.keys import Hasher, KeyedHash
from suppression.schema import installation, unsubscribe_tokens

MAC_BYTES = 10
_PURPOSE = "unsubscribe-token"
_RECIPIENT_PURPOSE = "recipient-unsubscribe-token"
# The length byte's high bit marks a recipient token (ids are at most 8 bytes long), the
# next one a token that signs the installation id.
_RECIPIENT_FLAG: Final = 0x80
_BOUND_FLAG: Final = 0x40
TOKEN: Final = "token"
RECIPIENT: Final = "recipient"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{4,64}")


@dataclass(frozen=True, slots=True)
class Installation:
    """This database's id, and the last ids whose tokens were issued unbound."""

    id: bytes
    legacy_token_max: int = 0
    legacy_recipient_max: int = 0


@dataclass(frozen=True, slots=True)
class Signer:
    """What signs and checks this database's tokens: the keys and the installation."""

    hasher: Hasher
    installation: Installation


# An installation row never changes once written: read once per engine, so that a
# token costs the same one lookup whether or not its MAC verifies.
_INSTALLATIONS: WeakKeyDictionary[Engine, Installation] = WeakKeyDictionary()


def signer(conn: Connection, hasher: Hasher) -> Signer:
    """What signs and checks tokens in the store `conn` is on (its installation row,
    made by migration 0009 or campaigns.installation.ensure)."""
    found = _INSTALLATIONS.get(conn.engine)
    if found is None:
        row = conn.execute(select(installation)).first()
        if row is None:
            raise ConfigurationError(
                "DATABASE_URL",
                "the store has no installation id (table installation): run `outreach db upgrade`",
            )
        found = Installation(
            bytes(row.installation_id), int(row.legacy_token_max), int(row.legacy_recipient_max)
        )
        _INSTALLATIONS[conn.engine] = found
    return Signer(hasher, found)


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


def _encode(signer: Signer, purpose: str, flag: int, value: int) -> str:
    body = _encode_id(value)
    mac = signer.hasher.sign(purpose, signer.installation.id + body)[:MAC_BYTES]
    # One length byte keeps the split unambiguous; base64url without padding is URL-safe.
    head = bytes([len(body) | flag | _BOUND_FLAG])
    return base64.urlsafe_b64encode(head + body + mac).rstrip(b"=").decode()


def encode(signer: Signer, token_id: int) -> str:
    """The token of a row of `unsubscribe_tokens`."""
    return _encode(signer, _PURPOSE, 0, token_id)


def encode_recipient(signer: Signer, recipient_id: int) -> str:
    """The token of a campaign recipient: the link in the message sent to them."""
    return _encode(signer, _RECIPIENT_PURPOSE, _RECIPIENT_FLAG, recipient_id)


def for_recipient(signer: Signer, recipient_id: int, token_id: int | None) -> str:
    """The token in a campaign recipient's message: the recipient's own, or, for one
    launched before recipient tokens (migration 0005), its token row's."""
    if token_id is not None:
        return encode(signer, token_id)
    return encode_recipient(signer, recipient_id)


def decode(signer: Signer, token: str) -> int | None:
    """The id of the token row, or None for anything forged, truncated or malformed, and
    for a recipient token."""
    found = decode_ref(signer, token)
    return found.id if found is not None and found.kind == TOKEN else None


def decode_ref(signer: Signer, token: str) -> TokenRef | None:
    """What the token names, or None for anything forged, truncated or malformed, signed
    for another installation, or unbound and newer than the binding."""
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
    bound = bool(raw[0] & _BOUND_FLAG)
    size = raw[0] & ~(_RECIPIENT_FLAG | _BOUND_FLAG)
    body, mac = raw[1 : 1 + size], raw[1 + size :]
    if size == 0 or size > 8 or len(body) != size or len(mac) != MAC_BYTES:
        return None
    purpose = _RECIPIENT_PURPOSE if recipient else _PURPOSE
    installation = signer.installation
    if not signer.hasher.verify(purpose, installation.id + body if bound else body, mac):
        return None
    found = int.from_bytes(body, "big")
    if not bound and found > (
        installation.legacy_recipient_max if recipient else installation.legacy_token_max
    ):
        return None  # unbound tokens were issued only up to these ids
    return TokenRef(RECIPIENT if recipient else TOKEN, found)


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
    return encode(signer(conn, hasher), int(token_id))


def resolve(conn: Connection, hasher: Hasher, token: str) -> TokenTarget | None:
    """The target of a token row's token (campaigns.optouts.unsubscribe.find resolves
    recipient tokens too)."""
    token_id = decode(signer(conn, hasher), token)
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
