"""Twilio webhooks: inbound SMS (SM-1) and message status callbacks (SM-2).

`verify` checks X-Twilio-Signature with the SDK's own RequestValidator against the
public URL Twilio called; `parse_inbound` and `parse_status` turn the form Twilio
posts into our events. Twilio's vocabulary (OptOutType, MessageStatus, error codes)
stays in this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Final

from twilio.request_validator import (
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from campaigns.optouts.events import (
    RECORD,
    REVIEW,
    SUPPRESS,
    DeliveryEvent,
    Event,
    OptOutEvent,
    WebhookRejected,
    WebhookRequest,
    keep,
)
from suppression import keywords
from suppression.errors import InvalidIdentity
from suppression.identity import Identity, phone_identity
from suppression.ledger import CARRIER_OPT_OUT, UNSUBSCRIBE

PROVIDER: Final = "twilio"
SIGNATURE_HEADER: Final = "X-Twilio-Signature"
# SM-2: "Attempt to send to unsubscribed recipient": the person opted out at Twilio.
ERROR_UNSUBSCRIBED: Final = "21610"

# Twilio's OptOutType (Advanced Opt-Out) -> (our event name, action). Twilio has already
# acted on these keywords on its side; we keep our own ledger in step.
OPT_OUT_TYPES: Final[dict[str, tuple[str, str]]] = {
    "STOP": ("sms_opt_out", SUPPRESS),
    "START": ("sms_opt_in_request", RECORD),  # ALL-5: never lifts a suppression
    "HELP": ("sms_help", RECORD),
}
# What an inbound text says (suppression.keywords) -> (our event name, action).
# Every SMS we send is marketing, so every inbound text is a reply to marketing: one that
# is not a keyword may still be a no in words we do not know ("Nå holder det"), so a
# person reads it (SM-1, the stricter reading). Only an empty reply is just recorded.
SMS_INTENTS: Final[dict[str, tuple[str, str]]] = {
    keywords.SMS_OPT_OUT: ("sms_opt_out", SUPPRESS),  # SM-1
    keywords.SMS_OPT_IN: ("sms_opt_in_request", RECORD),  # ALL-5
    keywords.SMS_HELP: ("sms_help", RECORD),
    keywords.SMS_REFUSAL: ("sms_refusal_text", REVIEW),
    keywords.SMS_OTHER: ("sms_text", REVIEW),
}
# Why a text needs a person (the review item's kind; stable strings, in source_event).
REVIEW_KINDS: Final[dict[str, str]] = {
    keywords.SMS_REFUSAL: keywords.SMS_REFUSAL,  # wording that looks like a no
    keywords.SMS_OTHER: "reply_text",  # any other reply
}

# Fields of Twilio's payloads that carry no personal data and may be stored (GD-4).
_STORED_FIELDS = frozenset(
    {
        "MessageSid",
        "SmsSid",
        "SmsMessageSid",
        "AccountSid",
        "MessagingServiceSid",
        "MessageStatus",
        "SmsStatus",
        "ErrorCode",
        "OptOutType",
        "NumMedia",
        "NumSegments",
        "ApiVersion",
        "RawDlrDoneDate",
    }
)


class _Params:
    """The form as the validator reads it: iterable names, every value of each name."""

    def __init__(self, request: WebhookRequest) -> None:
        self._request = request

    def __iter__(self) -> Iterator[str]:
        return iter(self._request.names())

    def __bool__(self) -> bool:
        return bool(self._request.form)

    def getall(self, name: str) -> list[str]:
        return self._request.getall(name)


def verify(request: WebhookRequest, *, auth_token: str | None) -> None:
    """Raise WebhookRejected unless Twilio signed this request with our auth token."""
    if not auth_token:
        raise WebhookRejected("TWILIO_AUTH_TOKEN is not set: Twilio webhooks are refused")
    signature = request.header(SIGNATURE_HEADER)
    if not signature:
        raise WebhookRejected(f"{SIGNATURE_HEADER} header missing")
    algorithm = get_signature_algorithm(request.header(SIGNATURE_SETTINGS_HEADER))
    validator = RequestValidator(auth_token)
    if not validator.validate(request.url, _Params(request), signature, algorithm):
        raise WebhookRejected(f"{SIGNATURE_HEADER} does not match the request")


def _phone(raw: str) -> Identity | None:
    try:
        return phone_identity(raw)
    except InvalidIdentity:
        return None


def _message_id(request: WebhookRequest) -> str:
    return (
        request.get("MessageSid") or request.get("SmsMessageSid") or request.get("SmsSid")
    ).strip()[:80]


def _media_count(request: WebhookRequest) -> int:
    raw = request.get("NumMedia").strip()
    return int(raw) if raw.isdecimal() and len(raw) < 4 else 0


def _review_text(body: str, media: int) -> str:
    """What the reviewer reads: the text, and a word about pictures we do not keep."""
    if not media:
        return body
    note = f"[{media} attachment(s), not stored here: see the message at Twilio]"
    return f"{body}\n{note}" if body.strip() else note


def parse_inbound(request: WebhookRequest, received_at: datetime) -> list[Event]:
    """An inbound SMS: a keyword opt-out (SM-1), a recorded START/HELP (ALL-5), or a
    reply for a person in the review queue (any other text or picture: it may be a no)."""
    now = received_at
    sid = _message_id(request)
    if not sid:
        return []
    body = request.get("Body")
    media = _media_count(request)
    opt_out_type = request.get("OptOutType").strip().upper()
    review_kind = ""
    if opt_out_type in OPT_OUT_TYPES:
        name, action = OPT_OUT_TYPES[opt_out_type]
    else:
        intent = keywords.classify_sms(body)
        name, action = SMS_INTENTS[intent]
        if intent == keywords.SMS_OTHER and not body.strip() and not media:
            action = RECORD  # nothing was said
        review_kind = REVIEW_KINDS.get(intent, "") if action == REVIEW else ""
    return [
        OptOutEvent(
            provider=PROVIDER,
            event_id=sid,
            name=name,
            action=action,
            occurred_at=now,
            identity=_phone(request.get("From")),
            scope="sms",
            reason=UNSUBSCRIBE if action == SUPPRESS else "",
            text=_review_text(body, media) if action == REVIEW else "",
            review_kind=review_kind,
            evidence_ref=f"twilio:{sid}",
            raw=dict(request.form),
            stored=keep(request.form, _STORED_FIELDS),
        )
    ]


def parse_status(request: WebhookRequest, received_at: datetime) -> list[Event]:
    """A status callback: the delivery state, and for error 21610 an SMS suppression of
    the recipient (SM-2). A message id we never sent is still recorded."""
    now = received_at
    sid = _message_id(request)
    status = (request.get("MessageStatus") or request.get("SmsStatus")).strip()[:40]
    if not sid or not status:
        return []
    error_code = request.get("ErrorCode").strip()[:20] or None
    stored = keep(request.form, _STORED_FIELDS)
    events: list[Event] = [
        DeliveryEvent(
            provider=PROVIDER,
            provider_message_id=sid,
            status=status,
            error_code=error_code,
            occurred_at=now,
            raw=dict(request.form),
            stored=stored,
        )
    ]
    if error_code == ERROR_UNSUBSCRIBED:
        events.append(
            OptOutEvent(
                provider=PROVIDER,
                event_id=f"{sid}:{ERROR_UNSUBSCRIBED}",
                name="sms_carrier_opt_out",
                action=SUPPRESS,
                occurred_at=now,
                identity=_phone(request.get("To")),
                scope="sms",
                reason=CARRIER_OPT_OUT,
                evidence_ref=f"twilio:{sid}:error {ERROR_UNSUBSCRIBED}",
                raw=dict(request.form),
                stored=stored,
            )
        )
    return events
