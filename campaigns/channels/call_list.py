"""The call-list channel: "sending" a call campaign puts the recipient on its call list.

Nothing leaves the process here: a recipient recorded `listed` (provider id
`calllist:<campaign>`) is on the list, and becomes `sent` when `outreach calllist export`
(campaigns.calllist) hands it to the call centre, after checking the register's freshness
(TP-2), the caller id (TP-6) and the ledger again (ALL-6). Until then it is no contact:
the frequency cap (ALL-8) counts it from the export.
"""

from __future__ import annotations

from collections.abc import Sequence

from campaigns.campaign_schema import LISTED
from campaigns.channels.base import Channel, Outcome, OutgoingMessage


def provider_id(campaign_id: int) -> str:
    return f"calllist:{campaign_id}"


class CallListChannel(Channel):
    name = "call_list"
    # What a recipient the channel did receive becomes (campaigns.recording).
    received_state = LISTED

    def build(self, message: OutgoingMessage) -> str:
        return message.to

    def send_payloads(self, payloads: Sequence[tuple[OutgoingMessage, str]]) -> list[Outcome]:
        outcomes = []
        for message, phone in payloads:
            if not phone:
                outcomes.append(
                    Outcome(
                        message.recipient_id,
                        "failed",
                        error="no phone number (erased)",
                        code="no_address",
                    )
                )
            else:
                outcomes.append(
                    Outcome(
                        message.recipient_id, LISTED, provider_id=provider_id(message.campaign_id)
                    )
                )
        return outcomes

    def reconcile(self, campaign_id: int, recipient_ids: Sequence[int]) -> dict[int, str]:
        # Putting someone on the list has no effect outside the store, and the export checks
        # everyone again: an interrupted hand-over is a completed one.
        return {rid: provider_id(campaign_id) for rid in recipient_ids}
