"""The unsubscribe link: what a token stands for, and the choices its page offers.

A token names a row that holds only the keyed hash of the identity (a token row, or
the campaign recipient the message went to), so everything here works after the
person's erasure (ALL-4). Looking a token up never changes
anything (EM-2); `unsubscribe` writes the ledger entries on the caller's
connection, and the caller commits before it answers (guarantee 3).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import Connection, Engine, bindparam, select

from campaigns.campaign_schema import IDENTITY_KIND, campaigns, recipients
from campaigns.schema import contacts
from suppression import tokens
from suppression.keys import Hasher, KeyedHash
from suppression.ledger import CHANNEL_SCOPES, OBJECTION, UNSUBSCRIBE, Ledger, Status, entry_rows
from suppression.rotation import forwarded
from suppression.schema import unsubscribe_tokens
from suppression.tokens import TokenTarget

SOURCE: Final = "web"
ONE_CLICK_FIELD: Final = "List-Unsubscribe"
ONE_CLICK_VALUE: Final = "One-Click"  # RFC 8058: the body is List-Unsubscribe=One-Click

# What the person chose (the page's buttons; one-click is CHOICE_CHANNEL).
CHOICE_CHANNEL: Final = "channel"  # ALL-2: the channel the message came through
CHOICE_ALL: Final = "all"  # ALL-1: all marketing, every channel
CHOICE_PREFERENCES: Final = "preferences"  # the channels ticked on the form
CHOICES: Final = (CHOICE_CHANNEL, CHOICE_ALL, CHOICE_PREFERENCES)

# A token's channel (as the campaign engine issues it) -> the ledger scope it stops.
_SCOPE_OF_CHANNEL: Final = {
    "email": "email",
    "sms": "sms",
    "call": "phone",
    "phone": "phone",
    "post": "post",
}
# No row has this id: a forged token still costs one lookup, so that the answer to a
# forged token and to an unknown one cannot be told apart by timing.
_NO_SUCH_ID: Final = -1
# Built once: the unsubscribe endpoint runs this for every request.
_FIND_TOKEN: Final = select(
    unsubscribe_tokens.c.key_hash,
    unsubscribe_tokens.c.key_id,
    unsubscribe_tokens.c.identity_kind,
    unsubscribe_tokens.c.channel,
    unsubscribe_tokens.c.campaign_id,
).where(unsubscribe_tokens.c.id == bindparam("id"))
_FIND_RECIPIENT: Final = (
    select(
        recipients.c.key_hash,
        recipients.c.key_id,
        campaigns.c.channel,
        recipients.c.campaign_id,
    )
    .join(campaigns, campaigns.c.id == recipients.c.campaign_id)
    .where(recipients.c.id == bindparam("id"), recipients.c.key_id.is_not(None))
)


class ChoiceError(ValueError):
    """The form asked for nothing we can do (no channel ticked, an unknown button)."""


def find(conn: Connection, hasher: Hasher, token: str) -> TokenTarget | None:
    """The token's target, or None for a forged, malformed or unknown token."""
    ref = tokens.decode_ref(tokens.signer(conn, hasher), token)
    if ref is not None and ref.kind == tokens.RECIPIENT:
        found = conn.execute(_FIND_RECIPIENT, {"id": ref.id}).first()
        if found is None or not found.key_hash:
            return None
        return TokenTarget(
            token_id=ref.id,
            key_hash=bytes(found.key_hash),
            key_id=found.key_id,
            identity_kind=IDENTITY_KIND[found.channel],
            channel=found.channel,
            campaign_id=found.campaign_id,
            kind=tokens.RECIPIENT,
        )
    row = conn.execute(_FIND_TOKEN, {"id": ref.id if ref is not None else _NO_SUCH_ID}).first()
    if ref is None or row is None:
        return None
    return TokenTarget(
        token_id=ref.id,
        key_hash=bytes(row.key_hash),
        key_id=row.key_id,
        identity_kind=row.identity_kind,
        channel=row.channel,
        campaign_id=row.campaign_id,
    )


def channel_scope(target: TokenTarget) -> str:
    """The ledger scope of the token's channel; an unknown channel stops everything."""
    return _SCOPE_OF_CHANNEL.get(target.channel, "all")


def stopped_scopes(conn: Connection, hasher: Hasher, target: TokenTarget) -> frozenset[str]:
    """The channels already stopped for the token's identity (to show on the page)."""
    status = Status()
    keys = forwarded(conn, KeyedHash(target.key_id, target.key_hash))
    for _digest, found in Ledger(conn, hasher).screen([k.digest for k in keys]):
        status.entries.extend(found.entries)
    return frozenset(scope for scope in CHANNEL_SCOPES if status.suppressed(scope))


def entries_for(
    target: TokenTarget, choice: str, channels: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """The (scope, reason) entries a choice writes."""
    if choice == CHOICE_CHANNEL:
        return [(channel_scope(target), UNSUBSCRIBE)]  # ALL-2
    if choice == CHOICE_ALL:
        return [("all", OBJECTION)]  # ALL-1: an objection to all direct marketing
    if choice == CHOICE_PREFERENCES:
        chosen = [scope for scope in CHANNEL_SCOPES if scope in set(channels)]
        if not chosen:
            raise ChoiceError("no channel chosen")
        return [(scope, UNSUBSCRIBE) for scope in chosen]
    raise ChoiceError("unknown choice")


def unsubscribe(
    conn: Connection,
    hasher: Hasher,
    target: TokenTarget,
    choice: str,
    channels: Iterable[str] = (),
    *,
    now: datetime,
) -> list[str]:
    """Write the choice's ledger entries; returns the scopes stopped. The source event is
    the token and the scope, so a repeated click (or one-click POST) changes nothing."""
    # The token's digest, and where a rekey moved it since (the contact's key now).
    keys = forwarded(conn, KeyedHash(target.key_id, target.key_hash))
    ledger = Ledger(conn, hasher)
    scopes: list[str] = []
    for scope, reason in entries_for(target, choice, channels):
        ledger.add_many(
            entry_rows(
                keys,
                identity_kind=target.identity_kind,
                kind="suppression",
                scope=scope,
                reason=reason,
                source=SOURCE,
                source_event=f"{target.ref}:{scope}",
                evidence_ref=target.ref,
                occurred_at=now.astimezone(UTC),
                recorded_at=now.astimezone(UTC),
                actor="recipient",
            )
        )
        scopes.append(scope)
    return scopes


@dataclass(frozen=True, slots=True)
class PageView:
    """What the landing page shows for a token."""

    target: TokenTarget
    scope: str  # the scope of the token's channel
    stopped: frozenset[str]  # scopes already stopped for the identity
    # Whether the person is our customer: only a customer is told that messages about
    # the agreement continue (a partner lead has no agreement).
    customer: bool = False


def is_customer(conn: Connection, target: TokenTarget) -> bool:
    """Whether the token's person is a customer: the recipient's contact, or for a token
    row the contact holding the token's identity. An erased person is no one's."""
    if target.kind == tokens.RECIPIENT:
        found = (
            select(contacts.c.is_customer)
            .join(recipients, recipients.c.contact_id == contacts.c.id)
            .where(recipients.c.id == target.token_id)
        )
    elif target.identity_kind in ("email", "phone"):
        column = contacts.c.email_hash if target.identity_kind == "email" else contacts.c.phone_hash
        found = select(contacts.c.is_customer).where(column == target.key_hash)
    else:
        return False
    return any(bool(flag) for flag in conn.execute(found).scalars())


def view(engine: Engine, hasher: Hasher, token: str) -> PageView | None:
    """The landing page's facts, or None for a token that is not ours. Reads only (EM-2)."""
    with engine.connect() as conn:
        target = find(conn, hasher, token)
        if target is None:
            return None
        return PageView(
            target,
            channel_scope(target),
            stopped_scopes(conn, hasher, target),
            is_customer(conn, target),
        )


def submit(
    engine: Engine,
    hasher: Hasher,
    token: str,
    choice: str,
    channels: Iterable[str],
    now: datetime,
) -> list[str] | None:
    """Record a choice made at `now` and commit; None for a token that is not ours.
    Returns only after the commit, so an answer built on it never claims a no that was
    not stored."""
    with engine.begin() as conn:
        target = find(conn, hasher, token)
        if target is None:
            return None
        return unsubscribe(conn, hasher, target, choice, channels, now=now)
