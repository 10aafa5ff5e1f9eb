"""The Mailchimp email channel: stage every batch in the audience, send the campaign once.

Per batch (`send_payloads`), after the engine's send-time check: the recipients are
upserted into the audience with their merge fields (never subscribing an existing
member, see `audience`); they come back `staged`. Members Mailchimp holds as
unsubscribed or cleaned are recorded in the ledger and end `excluded_at_send` (EM-4).

Once every batch is staged (`finalize`, called once per campaign): a static segment
(in Mailchimp, a tag) of the staged recipients, a regular campaign on it with the
content rendered with merge tags, then, right before the send, the ledger check again
(ALL-6): whoever said no since the sync is removed from the segment and unsubscribed
in the audience (EM-4); then the send. Mailchimp sends a campaign at most once, so a
send whose answer was lost is checked (campaign status) and repeated only while
Mailchimp says it was not sent.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Final

from campaigns.channels.base import Channel, Outcome, OutcomeUnknown, OutgoingMessage, Recheck
from campaigns.channels.mailchimp.api import (
    DEFAULT_MAX_CONNECTIONS,
    Gate,
    MailchimpApi,
    with_retries,
)
from campaigns.channels.mailchimp.audience import (
    FIRST_NAME,
    LAST_NAME,
    NOTICE_FIELD,
    URL_FIELD,
    Audience,
    Member,
    SyncResult,
)
from campaigns.channels.mailchimp.content import Content, EmailCampaign, render
from campaigns.channels.mailchimp.optouts import GoneCallback
from campaigns.channels.recipients import RecipientLookup
from suppression.errors import ChannelError, RateLimited

SEND_ATTEMPTS: Final = 4
SEND_BACKOFF: Final = 0.5
SENT_STATUSES: Final = ("sent", "sending")
RULE_MAILCHIMP_STATUS: Final = "EM-4"


class MailchimpChannel(Channel):
    """Email through one Mailchimp audience (`list_id`).

    `campaign` is what the campaign content needs (finalize); `lookup` names the
    staged recipients again at finalize; `on_members_gone([(address, status)])`
    records members Mailchimp holds as unsubscribed or cleaned (EM-4) and must commit
    before it returns; `gate` bounds simultaneous connections across processes (by
    default, across the threads of this process).
    """

    name = "mailchimp"

    def __init__(
        self,
        api_key: str,
        server: str,
        list_id: str,
        base_url: str | None = None,
        timeout: float = 10,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        *,
        campaign: EmailCampaign | None = None,
        lookup: RecipientLookup | None = None,
        on_members_gone: GoneCallback | None = None,
        gate: Gate | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api = MailchimpApi(api_key, server, base_url, timeout, max_connections, gate)
        self.list_id = list_id
        self.audience = Audience(self.api, list_id)
        self.campaign = campaign
        self.lookup = lookup
        self.on_members_gone = on_members_gone
        self.sleep = sleep

    # -- staging -------------------------------------------------------------------------

    def build(self, message: OutgoingMessage) -> Member:
        values = message.values
        return Member(
            email=message.to.lower(),
            merge_fields={
                FIRST_NAME: values.get("first_name", ""),
                LAST_NAME: values.get("last_name", ""),
                URL_FIELD: message.unsubscribe_url,
                NOTICE_FIELD: values.get("source_notice", ""),
            },
        )

    def send_payloads(self, payloads: Sequence[tuple[OutgoingMessage, Any]]) -> list[Outcome]:
        """Sync the batch into the audience; nothing reaches anyone yet."""
        outcomes: list[Outcome] = []
        ids_by_email: dict[str, list[int]] = defaultdict(list)
        members: list[Member] = []
        for message, member in payloads:
            if not member.email:
                outcomes.append(
                    _failed(message.recipient_id, "no email address (erased)", "no_address")
                )
                continue
            if member.email not in ids_by_email:
                members.append(member)
            ids_by_email[member.email].append(message.recipient_id)
        if not members:
            return outcomes
        ids = [rid for rids in ids_by_email.values() for rid in rids]
        if self.campaign is not None and not self.campaign.reply_to:
            reason = "the campaign has no from address (reply-to), which Mailchimp requires"
            return outcomes + [_failed(rid, reason, "no_reply_to") for rid in ids]
        try:
            self.audience.ensure_merge_fields()
            result = self.audience.upsert(members)
        except RateLimited as exc:
            return outcomes + [
                Outcome(rid, "retry", error="rate limited", retry_after=exc.retry_after)
                for rid in ids
            ]
        except ChannelError as exc:
            # Upserts are idempotent: even an unknown outcome is simply tried again.
            state = "failed" if exc.permanent else "retry"
            return outcomes + [
                Outcome(rid, state, error=str(exc)[:300], code=exc.code) for rid in ids
            ]
        if result.gone and self.on_members_gone is not None:
            self.on_members_gone(sorted(result.gone.items()))
        for email, rids in ids_by_email.items():
            outcomes.extend(_staged(rid, email, result) for rid in rids)
        return outcomes

    # -- the send --------------------------------------------------------------------------

    def finalize(
        self, campaign_id: int, recipient_ids: Sequence[int], recheck: Recheck
    ) -> list[Outcome]:
        if self.campaign is None or self.lookup is None:
            raise RuntimeError(
                "MailchimpChannel.finalize needs the campaign and a recipient lookup"
            )
        refs = self.lookup(recipient_ids)
        emails = {rid: ref.email.lower() for rid, ref in refs.items() if ref.email}
        outcomes = [
            _failed(rid, "no email address (erased)", "no_address")
            for rid in recipient_ids
            if rid not in emails
        ]
        ids = [rid for rid in recipient_ids if rid in emails]
        if not ids:
            return outcomes
        content = render(self.campaign)
        try:
            segment_id = with_retries(
                lambda: self.audience.create_segment(f"outreach-{campaign_id}"), sleep=self.sleep
            )
            self.audience.add_to_segment(segment_id, [emails[rid] for rid in ids])
            mc_id = with_retries(lambda: self._create(segment_id, content), sleep=self.sleep)
            with_retries(
                lambda: self.api.call(
                    self.api.client.campaigns.set_content,
                    mc_id,
                    {"html": content.html, "plain_text": content.plain_text},
                ),
                sleep=self.sleep,
            )
        except ChannelError as exc:
            return outcomes + [_failed(rid, f"not sent: {exc}", exc.code) for rid in ids]
        # ALL-6: the last check, right before the send.
        stopped = recheck(ids)
        excluded = [
            Outcome(rid, "excluded_at_send", rule=stopped[rid]) for rid in ids if rid in stopped
        ]
        to_send = [rid for rid in ids if rid not in stopped]
        if stopped:
            said_no = [emails[rid] for rid in ids if rid in stopped]
            try:
                self.audience.remove_from_segment(segment_id, said_no)
                self.audience.unsubscribe(said_no)  # EM-4: the ledger's no, pushed
            except ChannelError as exc:
                # Sending now could reach someone who said no: nobody gets this campaign.
                reason = f"not sent: could not remove opted-out members ({exc})"
                return outcomes + excluded + [_failed(rid, reason, exc.code) for rid in to_send]
        if not to_send:
            return outcomes + excluded
        state, error, code = self._send(mc_id)
        return (
            outcomes
            + excluded
            + [Outcome(rid, state, provider_id=mc_id, error=error, code=code) for rid in to_send]
        )

    def _create(self, segment_id: int, content: Content) -> str:
        assert self.campaign is not None
        created = self.api.call(
            self.api.client.campaigns.create,
            {
                "type": "regular",
                "recipients": {
                    "list_id": self.list_id,
                    "segment_opts": {"saved_segment_id": segment_id},
                },
                "settings": {
                    "subject_line": content.subject,
                    "title": self.campaign.title,
                    "from_name": self.campaign.from_name,
                    "reply_to": self.campaign.reply_to,
                },
            },
        )
        return str(created["id"])

    def _status(self, mc_id: str) -> str | None:
        try:
            found = self.api.call(self.api.client.campaigns.get, mc_id)
        except ChannelError:
            return None
        return str(found.get("status")) if isinstance(found, dict) else None

    def _send(self, mc_id: str) -> tuple[str, str | None, str | None]:
        """(state, error, code): sent, failed or unknown."""
        uncertain = False
        last: ChannelError | None = None
        for attempt in range(SEND_ATTEMPTS):
            try:
                self.api.call(self.api.client.campaigns.send, mc_id)
                return "sent", None, None
            except ChannelError as exc:
                last = exc
                uncertain = uncertain or isinstance(exc, OutcomeUnknown)
            # Whatever the error, Mailchimp knows whether it sent the campaign: ask it.
            status = self._status(mc_id)
            if status in SENT_STATUSES:
                return "sent", None, None
            if last.permanent and status is not None:
                break
            if attempt + 1 < SEND_ATTEMPTS:
                wait = (
                    last.retry_after if isinstance(last, RateLimited) else SEND_BACKOFF * 2**attempt
                )
                self.sleep(wait)
        status = self._status(mc_id)
        if status in SENT_STATUSES:
            return "sent", None, None
        error = str(last)[:300] if last else "not sent"
        code = last.code if last else None
        if uncertain or status is None:
            return "unknown", error, code
        return "failed", error, code

    def reconcile(self, campaign_id: int, recipient_ids: Sequence[int]) -> dict[int, str]:
        """Recipients whose send outcome was lost carry the Mailchimp campaign id: the
        campaign's status says whether it went out."""
        if self.lookup is None:
            return {}
        by_campaign: dict[str, list[int]] = defaultdict(list)
        for rid, ref in self.lookup(recipient_ids).items():
            if ref.provider_id:
                by_campaign[ref.provider_id].append(rid)
        found: dict[int, str] = {}
        for mc_id, rids in by_campaign.items():
            if self._status(mc_id) in SENT_STATUSES:
                found.update(dict.fromkeys(rids, mc_id))
        return found


def _failed(rid: int, error: str, code: str | None) -> Outcome:
    return Outcome(rid, "failed", error=error[:300], code=code)


def _staged(rid: int, email: str, result: SyncResult) -> Outcome:
    if email in result.subscribed:
        return Outcome(rid, "staged")
    if email in result.gone:
        # EM-4: Mailchimp's no stands (and is now in the ledger).
        return Outcome(
            rid,
            "excluded_at_send",
            rule=RULE_MAILCHIMP_STATUS,
            error=f"mailchimp: {result.gone[email]}",
        )
    if email in result.other:
        status = result.other[email]
        return _failed(rid, f"mailchimp holds the member as {status}", f"status:{status}"[:40])
    code = result.errors.get(email, "error")
    return _failed(rid, f"mailchimp refused the member ({code})", code[:40])
