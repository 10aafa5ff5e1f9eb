"""Mailchimp audience webhooks (EM-4): unsubscribe, cleaned, upemail, profile.

Mailchimp posts form-encoded bodies with flat keys (`type`, `fired_at`,
`data[email]`, `data[reason]`, `data[merges][EMAIL]`, ...). It signs nothing, so the
webhook URL carries a secret path segment that `verify` compares in constant time.
A retried event hashes to the same event id and is recorded once.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

from campaigns.optouts.events import (
    ADDRESS_CHANGE,
    RECORD,
    SUPPRESS,
    Event,
    OptOutEvent,
    WebhookRejected,
    WebhookRequest,
    keep,
)
from suppression.errors import InvalidIdentity
from suppression.identity import Identity, email_identity
from suppression.ledger import COMPLAINT, HARD_BOUNCE, UNSUBSCRIBE

PROVIDER: Final = "mailchimp"
SECRET_PARAM: Final = "secret"
FIRED_AT_FORMAT: Final = "%Y-%m-%d %H:%M:%S"  # Mailchimp's fired_at, in UTC

# (Mailchimp's type, its data[reason] or None for any other) -> (action, reason, scope).
EVENTS: Final[dict[tuple[str, str | None], tuple[str, str, str]]] = {
    ("unsubscribe", "abuse"): (SUPPRESS, COMPLAINT, "all"),  # a spam complaint
    ("unsubscribe", None): (SUPPRESS, UNSUBSCRIBE, "email"),  # ALL-2
    ("cleaned", "hard"): (SUPPRESS, HARD_BOUNCE, "email"),
    ("cleaned", "abuse"): (SUPPRESS, COMPLAINT, "email"),
    ("cleaned", None): (SUPPRESS, HARD_BOUNCE, "email"),  # Mailchimp will not send there
    ("upemail", None): (ADDRESS_CHANGE, "", "email"),
    ("profile", None): (RECORD, "", "email"),
    ("subscribe", None): (RECORD, "", "email"),  # ALL-5: a subscribe never lifts a no
    ("campaign", None): (RECORD, "", "email"),
}

# Fields that carry no personal data and may be stored (GD-4). Not data[id]: Mailchimp's
# member id is the MD5 of the lower-cased address, so it identifies the person.
_STORED_FIELDS = frozenset(
    {"type", "fired_at", "data[list_id]", "data[reason]", "data[action]", "data[campaign_id]"}
)


def verify(request: WebhookRequest, *, secret: str | None) -> None:
    """Raise WebhookRejected unless the URL's secret segment is ours (constant time)."""
    if not secret:
        raise WebhookRejected("MAILCHIMP_WEBHOOK_SECRET is not set: Mailchimp webhooks are refused")
    given = request.path_params.get(SECRET_PARAM, "").encode("utf-8")
    if not hmac.compare_digest(given, secret.encode("utf-8")):
        raise WebhookRejected("the Mailchimp webhook secret does not match")


def _email(raw: str) -> Identity | None:
    try:
        return email_identity(raw)
    except InvalidIdentity:
        return None


def _fired_at(raw: str, default: datetime) -> datetime:
    try:
        return datetime.strptime(raw.strip(), FIRED_AT_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return default


def parse(
    request: WebhookRequest, received_at: datetime, event_key: Callable[..., str]
) -> list[Event]:
    """The event of one Mailchimp webhook POST; an empty list for a body that is not one.
    `event_key` makes its id (`Hasher.event_id`): the fields it is made of hold the
    email, so an unkeyed hash of them would give the email back to a guess."""
    now = received_at
    kind = request.get("type").strip().lower()
    if not kind:
        return []
    reason_given = request.get("data[reason]").strip().lower()
    mapping = EVENTS.get((kind, reason_given)) or EVENTS.get((kind, None))
    action, reason, scope = mapping if mapping else (RECORD, "", "email")
    fired_at = request.get("fired_at")
    list_id = request.get("data[list_id]")
    key_parts: tuple[str, ...]
    if kind == "upemail":
        address = request.get("data[old_email]")
        new_address = request.get("data[new_email]")
        key_parts = (kind, fired_at, address, new_address, list_id)
    else:
        address = request.get("data[email]") or request.get("data[merges][EMAIL]")
        new_address = ""
        key_parts = (kind, fired_at, address, list_id)
    ident = event_key(*key_parts)
    return [
        OptOutEvent(
            provider=PROVIDER,
            event_id=ident,
            name=f"mailchimp_{kind}"[:40],
            action=action,
            occurred_at=_fired_at(fired_at, now),
            identity=_email(address),
            scope=scope,
            reason=reason,
            new_identity=_email(new_address) if new_address else None,
            evidence_ref=f"mailchimp:{list_id[:40]}:{kind}:{fired_at[:40]}",
            raw=dict(request.form),
            stored=keep(request.form, _STORED_FIELDS),
        )
    ]
