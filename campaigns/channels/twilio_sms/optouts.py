"""SM-2: Twilio's 21610 (the person sent STOP to our sender) becomes an SMS suppression."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final

from sqlalchemy import Engine

from suppression.identity import phone_identity
from suppression.keys import Hasher
from suppression.ledger import CARRIER_OPT_OUT, Ledger

SOURCE: Final = "twilio"


def carrier_opt_out_recorder(
    engine: Engine, hasher: Hasher, now: Callable[[], datetime]
) -> Callable[[str], None]:
    """`on_opt_out` for `TwilioSmsChannel`: one ledger entry per number, committed before
    it returns. The source event is the code and the number's hash, so a second 21610
    for the same number (another campaign, a retry) adds nothing."""

    def record(e164: str) -> None:
        ident = phone_identity(e164)
        key = hasher.hash(ident)
        with engine.begin() as conn:
            Ledger(conn, hasher).add(
                ident,
                ident.kind,
                scope="sms",
                reason=CARRIER_OPT_OUT,
                source=SOURCE,
                source_event=f"21610:{key.digest.hex()[:32]}",
                evidence_ref="twilio: error 21610 answered to a message create",
                now=now(),
            )

    return record
