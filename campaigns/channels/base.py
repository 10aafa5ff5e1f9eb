"""The channel base class: the sequence is fixed here, providers fill in the steps.

`Channel.deliver(messages, recheck)` is not overridden. It

1. re-checks suppression for the whole batch at once (ALL-6) through `recheck`,
   which the engine supplies (it runs one query against the ledger and the
   frequency cap right before the provider call);
2. builds each provider payload (`build`);
3. calls the provider (`send_payloads`, by default `send_payload` one by one);
4. maps every result to an `Outcome` the engine records.

A provider raises `ChannelError(permanent=True)` for errors that must not be
retried (invalid number, opted out at the carrier), `RateLimited` when asked to
slow down, `OutcomeUnknown` when the request may have reached the provider but no
answer came back (never retried blindly: the recipient becomes `unknown`), and
any other `ChannelError` for a transient failure (the recipient is retried).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from suppression.errors import ChannelError, RateLimited


class OutcomeUnknown(ChannelError):
    """The request may have been delivered to the provider; we cannot tell."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    recipient_id: int
    campaign_id: int
    to: str  # canonical email or E.164 phone
    subject: str
    body: str
    unsubscribe_url: str
    name: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    # The per-recipient template values (first_name, last_name, source_notice), for
    # providers that render the message themselves from merge fields (Mailchimp).
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    recipient_id: int
    state: str  # sent | staged | failed | retry | unknown | excluded_at_send
    provider_id: str | None = None
    error: str | None = None
    code: str | None = None
    rule: str | None = None  # for excluded_at_send: the rule that stopped it
    retry_after: float | None = None


# recheck(recipient_ids) -> {recipient_id: rule id} for those that must not be sent now.
Recheck = Callable[[Sequence[int]], dict[int, str]]


class Channel(ABC):
    """A way out. Subclasses implement `build` and `send_payload` (or `send_payloads`)."""

    name: str = "channel"

    def deliver(self, messages: Sequence[OutgoingMessage], recheck: Recheck) -> list[Outcome]:
        stopped = recheck([m.recipient_id for m in messages])
        outcomes = [
            Outcome(m.recipient_id, "excluded_at_send", rule=stopped[m.recipient_id])
            for m in messages
            if m.recipient_id in stopped
        ]
        to_send = [m for m in messages if m.recipient_id not in stopped]
        if not to_send:
            return outcomes
        payloads = [(m, self.build(m)) for m in to_send]
        outcomes.extend(self.send_payloads(payloads))
        return outcomes

    @abstractmethod
    def build(self, message: OutgoingMessage) -> Any:
        """The provider's request for one message."""

    def send_payloads(self, payloads: Sequence[tuple[OutgoingMessage, Any]]) -> list[Outcome]:
        """Send each payload; after a rate limit the rest of the batch is left for a retry."""
        outcomes: list[Outcome] = []
        for index, (message, payload) in enumerate(payloads):
            try:
                provider_id = self.send_payload(message, payload)
            except RateLimited as exc:
                outcomes.extend(
                    Outcome(
                        m.recipient_id, "retry", error="rate limited", retry_after=exc.retry_after
                    )
                    for m, _ in payloads[index:]
                )
                break
            except OutcomeUnknown as exc:
                outcomes.append(
                    Outcome(message.recipient_id, "unknown", error=str(exc)[:300], code=exc.code)
                )
            except ChannelError as exc:
                state = "failed" if exc.permanent else "retry"
                outcomes.append(
                    Outcome(message.recipient_id, state, error=str(exc)[:300], code=exc.code)
                )
            else:
                outcomes.append(Outcome(message.recipient_id, "sent", provider_id=provider_id))
        return outcomes

    def send_payload(self, message: OutgoingMessage, payload: Any) -> str:
        """Send one payload; returns the provider's message id."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement send_payload or send_payloads"
        )

    def finalize(
        self, campaign_id: int, recipient_ids: Sequence[int], recheck: Recheck
    ) -> list[Outcome]:
        """Channels that send a whole campaign at once (Mailchimp) return `staged` outcomes
        from `send_payloads` and send here, once, after every batch is staged. The engine
        calls it exactly once per campaign with the staged recipients (claimed as `sending`);
        it must call `recheck` right before the provider's send (ALL-6)."""
        return []

    def reconcile(self, campaign_id: int, recipient_ids: Sequence[int]) -> dict[int, str]:
        """For recipients whose outcome is unknown: {recipient_id: provider_id} of those the
        provider did receive. A channel that cannot tell returns {} and they stay unknown."""
        return {}
