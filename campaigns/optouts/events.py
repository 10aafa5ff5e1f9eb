"""One normalised shape for what providers tell us, whatever the provider.

Every provider module (`twilio`, `mailchimp`, `mailbox`) turns its own payloads into
these events through a mapping table from its event names to ours, keeping the raw
payload beside the event; `record` then writes them to the ledger, the review queue
and the event tables. A provider's own vocabulary never leaves its module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from suppression.errors import OutreachError
from suppression.identity import Identity

# What recording an event does (stable strings, they land in inbound_events.action).
SUPPRESS: Final = "suppress"  # a no: one ledger entry (scope, reason)
ERASURE_REQUEST: Final = "erasure_request"  # objection (ALL-1) + a review item for `forget`
ADDRESS_CHANGE: Final = "address_change"  # the old address's no follows the new one
REVIEW: Final = "review"  # looks like a no but is not clear: a person decides
RECORD: Final = "record"  # kept as an inbound event only (START, HELP, profile; ALL-5)
ACTIONS: Final = (SUPPRESS, ERASURE_REQUEST, ADDRESS_CHANGE, REVIEW, RECORD)


def storable(text: str) -> str:
    """Text as every store takes it: PostgreSQL refuses NUL characters in text."""
    return text.replace("\x00", "")


class WebhookRejected(OutreachError):
    """A webhook request that is not from the provider (bad signature, wrong secret)."""


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """A provider's HTTP request, as the web layer hands it over (no framework types).

    `url` is the URL the provider called, built from OUTREACH_PUBLIC_URL (the app may
    sit behind a proxy that changes scheme, host or port), with its query string.
    """

    url: str
    method: str
    headers: Mapping[str, str]  # lower-cased names
    form: Sequence[tuple[str, str]] = ()  # form fields in order; repeated names kept
    path_params: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        *,
        url: str,
        method: str,
        headers: Mapping[str, str],
        form: Sequence[tuple[str, str]] = (),
        path_params: Mapping[str, str] | None = None,
    ) -> WebhookRequest:
        """A request with its form fields made storable (no NUL characters)."""
        return cls(
            url=url,
            method=method,
            headers={name.lower(): value for name, value in headers.items()},
            form=[(storable(key), storable(value)) for key, value in form],
            path_params=dict(path_params or {}),
        )

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def get(self, name: str, default: str = "") -> str:
        """The first value of a form field."""
        for key, value in self.form:
            if key == name:
                return value
        return default

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self.form if key == name]

    def names(self) -> set[str]:
        return {key for key, _ in self.form}


@dataclass(frozen=True, slots=True)
class OptOutEvent:
    """Something a person (or a carrier on their behalf) told us, normalised.

    `event_id` is the provider's id of the event, or a hash of the fields that make it
    one event; it becomes the ledger's source_event, so a retried webhook is recorded
    once. `raw` is the payload as received and may hold personal data: it is never
    logged or stored; `stored` is the part of it that may be kept.
    """

    provider: str
    event_id: str
    name: str  # our event name: "sms_keyword", "unsubscribe", "cleaned", ...
    action: str  # one of ACTIONS
    occurred_at: datetime
    identity: Identity | None
    scope: str = "all"
    reason: str = ""
    new_identity: Identity | None = None  # ADDRESS_CHANGE: where the no must follow
    text: str = ""  # REVIEW / ERASURE_REQUEST: what the person wrote, for the reviewer
    review_kind: str = ""  # REVIEW / ERASURE_REQUEST: why it needs a person
    evidence_ref: str = ""
    raw: Mapping[str, object] = field(default_factory=dict, repr=False, compare=False)
    stored: Mapping[str, object] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """A provider's report of a message's delivery state."""

    provider: str
    provider_message_id: str
    status: str
    error_code: str | None
    occurred_at: datetime
    raw: Mapping[str, object] = field(default_factory=dict, repr=False, compare=False)
    stored: Mapping[str, object] = field(default_factory=dict, repr=False, compare=False)


Event = OptOutEvent | DeliveryEvent


def keep(payload: Sequence[tuple[str, str]], allowed: frozenset[str]) -> dict[str, object]:
    """The fields of a payload that may be stored: an allow-list, so that a new personal
    field a provider adds is dropped rather than kept (GD-4)."""
    kept: dict[str, object] = {}
    for key, value in payload:
        if key in allowed:
            kept[key] = value[:500]
    return kept


def to_json(stored: Mapping[str, object]) -> str:
    return json.dumps(stored, ensure_ascii=False, sort_keys=True, default=str)
