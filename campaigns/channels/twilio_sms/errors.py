"""Twilio's answers mapped to ours, through one table of error codes.

* codes that say this recipient can never get this message (invalid or unreachable
  number, opted out at the carrier) are permanent: the recipient fails, no retry;
* 429 / 20429 is a rate limit: retried later without spending a retry;
* 5xx is transient: the batch is retried with dramatiq's backoff;
* any other 4xx is permanent: the request as we build it will never be accepted;
* a connection that fails before the request left us (refused, connect timeout) is
  transient; one that fails after it left (read timeout, dropped connection) is
  `OutcomeUnknown`: the message may exist at Twilio and is never resent blindly.

Messages name the code only: Twilio's own text can repeat the phone number (GD-4).
"""

from __future__ import annotations

from typing import Final

import requests
from twilio.base.exceptions import TwilioRestException

from campaigns.channels.base import OutcomeUnknown
from campaigns.channels.http import sent_before_failure
from suppression.errors import ChannelError, RateLimited

OPTED_OUT: Final = 21610  # SM-2: the recipient answered STOP to Twilio
RATE_LIMITED: Final = 20429
DEFAULT_RETRY_AFTER: Final = 1.0

# Codes after which this recipient will never get this message, with our wording.
PERMANENT_RECIPIENT: Final[dict[int, str]] = {
    21211: "the 'To' number is not a valid phone number",
    21214: "the 'To' number cannot be reached",
    21217: "the 'To' number does not appear to be valid",
    21401: "invalid phone number",
    21407: "the number's type does not support SMS",
    21408: "SMS to the number's region is not enabled on the account",
    OPTED_OUT: "the recipient opted out at Twilio (STOP)",
    21612: "the 'To' number is not reachable via SMS",
    21614: "the 'To' number is not a mobile number",
}


def from_rest_error(exc: TwilioRestException) -> ChannelError:
    """An error answer of the API (the request reached Twilio and was refused)."""
    code = exc.code
    status = int(exc.status or 0)
    if status == 429 or code == RATE_LIMITED:
        return RateLimited(DEFAULT_RETRY_AFTER)
    if code in PERMANENT_RECIPIENT:
        return ChannelError(
            f"twilio {code}: {PERMANENT_RECIPIENT[code]}", permanent=True, code=str(code)
        )
    label = str(code) if code is not None else f"http {status}"
    if status >= 500:
        return ChannelError(f"twilio {label}: server error {status}", code=label)
    return ChannelError(f"twilio {label}: request refused ({status})", permanent=True, code=label)


def from_transport_error(exc: requests.RequestException) -> ChannelError:
    """No answer at all: before the request left (transient) or after (unknown)."""
    kind = type(exc).__name__
    if sent_before_failure(exc):
        return OutcomeUnknown(
            f"twilio: no answer after the request was sent ({kind})", code="no_answer"
        )
    return ChannelError(f"twilio: could not connect ({kind})", code="connect")
