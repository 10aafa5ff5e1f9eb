"""Campaigns as a marketer looks them up: the list, one campaign with its message as it
will render, and changes to a draft (issue 19, point 7).

The store does not record who created a campaign (the CLI has no notion of a user), so
a listing says `created_by: null` rather than guessing. A draft can be edited; once
launched, its recipients were decided against its template and audience, so changing
them would make the stored decisions lie (the launch's proof, explain): refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, func, select, update

from campaigns import campaign as campaign_mod
from campaigns.campaign import Audience, Campaign, CampaignError, Sender
from campaigns.campaign_schema import LISTED, SENT, campaigns, recipients
from campaigns.templates import example_values
from suppression.calendar import OSLO
from suppression.policy import PolicyConfig

# What an example message is rendered for: nobody's data (issue 19: "clearly marked as
# an example"). The link is not a token: it opens nothing.
EXAMPLE_FIRST_NAME: Final = "Eksempel"
EXAMPLE_LAST_NAME: Final = "Eksempelsen"
EXAMPLE_PARTNER: Final = "Eksempelpartner AS"
EXAMPLE_TOKEN: Final = "EKSEMPEL"
EXAMPLE_NOTE: Final = "example recipient, not a real person; the link is a placeholder"


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back what it stored in UTC without the zone."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def iso(moment: datetime | None) -> str | None:
    """A time for JSON: ISO 8601 with its offset, in Europe/Oslo."""
    at = _utc(moment)
    return at.astimezone(OSLO).isoformat() if at is not None else None


def oslo(moment: datetime | None) -> str:
    """A time for people: Europe/Oslo, to the minute."""
    at = _utc(moment)
    return f"{at.astimezone(OSLO):%Y-%m-%d %H:%M}" if at is not None else "-"


def describe_audience(audience: Audience) -> str:
    """Who a campaign is for, in a few words: customers, partner leads (which), where."""
    who = []
    if audience.customers:
        who.append("customers")
    if audience.partner_leads:
        named = f" of {', '.join(audience.partners)}" if audience.partners else ""
        who.append(f"partner leads{named}")
    text = " and ".join(who) or "nobody"
    if audience.postal_prefixes:
        text += f", postal codes {', '.join(p + '*' for p in audience.postal_prefixes)}"
    return text


@dataclass(frozen=True)
class Listed:
    """One line of `campaign list`: the campaign and its recipients' counts (none before
    launch: the audience is decided at launch; `campaign preview` counts a draft's)."""

    campaign: Campaign
    audience: int | None  # recipients decided at launch
    sent: int
    listed: int  # call campaigns: on a call list not yet exported

    def as_dict(self) -> dict[str, Any]:
        c = self.campaign
        return {
            "id": c.id,
            "name": c.name,
            "channel": c.channel,
            "purpose": c.purpose,
            "state": c.state,
            "for": describe_audience(c.audience),
            "audience": self.audience,
            "sent": self.sent,
            "listed": self.listed,
            "created_at": iso(c.created_at),
            "launched_at": iso(c.launched_at),
            "finished_at": iso(c.finished_at),
            "created_by": None,  # not recorded by the store
        }


def list_campaigns(conn: Connection, states: tuple[str, ...] = ()) -> list[Listed]:
    """Every campaign (or those in `states`), newest first, with its counts."""
    query = select(campaigns).order_by(campaigns.c.id.desc())
    if states:
        query = query.where(campaigns.c.state.in_(states))
    found = [Campaign.from_row(r._mapping) for r in conn.execute(query)]
    return _with_counts(conn, found)


def _with_counts(conn: Connection, found: list[Campaign]) -> list[Listed]:
    if not found:
        return []
    counts: dict[int, dict[str, int]] = {}
    for cid, state, n in conn.execute(
        select(recipients.c.campaign_id, recipients.c.state, func.count())
        .where(recipients.c.campaign_id.in_([c.id for c in found]))
        .group_by(recipients.c.campaign_id, recipients.c.state)
    ):
        counts.setdefault(int(cid), {})[state] = int(n)
    out = []
    for c in found:
        by_state = counts.get(c.id, {})
        total = sum(by_state.values()) if c.state != campaign_mod.DRAFT else None
        out.append(Listed(c, total, by_state.get(SENT, 0), by_state.get(LISTED, 0)))
    return out


def example_message(
    camp: Campaign,
    config: PolicyConfig,
    public_url: str,
    *,
    partner_lead: bool,
    partner_names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The campaign's message as it will render for an example recipient (a customer, or
    a partner lead with its source notice, GD-1), with the SMS segment count (SM-3)."""
    partner = None
    if partner_lead:
        named = [(partner_names or {}).get(p, p) for p in camp.audience.partners]
        partner = named[0] if named else EXAMPLE_PARTNER
    values = example_values(
        public_url,
        config.organisation_name,
        config.organisation_number,
        partner,
        EXAMPLE_FIRST_NAME,
        EXAMPLE_LAST_NAME,
        EXAMPLE_TOKEN,
    )
    subject, body = camp.message_template().render(values)
    shown: dict[str, Any] = {
        "example": True,
        "note": EXAMPLE_NOTE,
        "recipient": "partner lead" if partner_lead else "customer",
        "subject": subject if camp.channel == "email" else None,
        "body": body,
    }
    if camp.channel == "sms":
        from campaigns.sms import segments

        shown["segments"] = segments(body)
    return shown


def shown(
    conn: Connection,
    camp: Campaign,
    config: PolicyConfig,
    public_url: str,
    partner_names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`campaign show`: the campaign, its counts and its message for an example of each
    kind of recipient its audience holds."""
    (listed,) = _with_counts(conn, [camp])
    kinds = [False] if camp.audience.customers else []
    kinds += [True] if camp.audience.partner_leads else []
    s = camp.sender
    return {
        **listed.as_dict(),
        "template": camp.template,
        "audience_filter": {
            "customers": camp.audience.customers,
            "partner_leads": camp.audience.partner_leads,
            "partners": list(camp.audience.partners),
            "postal_prefixes": list(camp.audience.postal_prefixes),
        },
        "sender": {
            "from_name": s.from_name,
            "from_email": s.from_email,
            "sms_sender": s.sms_sender,
            "caller_id": s.caller_id,
        },
        "rate_limit": camp.rate_limit,
        "segment_limit": camp.segment_limit,
        "batch_size": camp.batch_size,
        "examples": [
            example_message(camp, config, public_url, partner_lead=k, partner_names=partner_names)
            for k in kinds
        ],
    }


@dataclass(frozen=True)
class Changes:
    """What `campaign edit` may change on a draft; None: unchanged."""

    name: str | None = None
    purpose: str | None = None
    template_text: str | None = None
    audience: Audience | None = None
    caller_id: str | None = None
    from_name: str | None = None
    from_email: str | None = None
    sms_sender: str | None = None
    rate_limit: int | None = None
    segment_limit: int | None = None
    batch_size: int | None = None

    def empty(self) -> bool:
        return all(v is None for v in vars(self).values())


def edit(
    conn: Connection,
    campaign_id: int,
    changes: Changes,
    config: PolicyConfig,
    *,
    now: datetime,
) -> Campaign:
    """Change a draft; every check `campaign create` makes runs again on the result
    (campaigns.preflight: ES-4, ALL-7, GD-1, SM-3, TP-6, TP-2), so an edit can never
    make a draft that create would have refused. A launched campaign is refused."""
    camp = campaign_mod.get(conn, campaign_id)
    if camp.state != campaign_mod.DRAFT:
        raise CampaignError(
            f"campaign {campaign_id} is {camp.state}: only a draft can be edited "
            "(its recipients were decided against what it is now)"
        )
    if changes.empty():
        raise CampaignError(f"campaign {campaign_id}: nothing to change (see --help)")
    name = (changes.name if changes.name is not None else camp.name).strip()
    if not name:
        raise CampaignError("name: must not be empty")
    purpose = (changes.purpose if changes.purpose is not None else camp.purpose).strip()
    if not purpose:
        raise CampaignError("purpose: a product category is required (ES-2, TP-3)")
    batch_size = changes.batch_size if changes.batch_size is not None else camp.batch_size
    if batch_size < 1 or batch_size > 10_000:
        raise CampaignError("batch_size: must be between 1 and 10000")
    if changes.rate_limit is not None and changes.rate_limit < 1:
        raise CampaignError("rate_limit: must be a positive number of messages per second")
    if changes.segment_limit is not None and changes.segment_limit < 1:
        raise CampaignError("segment_limit: must be at least 1")
    sender = _sender(camp.sender, changes)
    audience = changes.audience or camp.audience
    template_text = changes.template_text if changes.template_text is not None else camp.template
    segment_limit = changes.segment_limit or camp.segment_limit
    from campaigns import preflight, templates

    try:
        template = preflight.check(
            conn,
            channel=camp.channel,
            template_text=template_text,
            audience=audience,
            sender=sender,
            segment_limit=segment_limit,
            config=config,
            now=now,
        )
    except templates.TemplateRefused as exc:
        if changes.template_text is not None:
            raise  # the file given is refused (exit 5)
        # The stored template, under a changed limit or audience: the change is refused.
        raise CampaignError(f"campaign {campaign_id}: {exc}; nothing changed") from None
    conn.execute(
        update(campaigns)
        .where(campaigns.c.id == campaign_id, campaigns.c.state == campaign_mod.DRAFT)
        .values(
            name=name,
            purpose=purpose,
            template=template_text,
            subject=template.subject,
            audience=audience.to_json(),
            sender=sender.to_json(),
            rate_limit=changes.rate_limit or camp.rate_limit,
            segment_limit=segment_limit,
            batch_size=batch_size,
        )
    )
    return campaign_mod.get(conn, campaign_id)


def _sender(sender: Sender, changes: Changes) -> Sender:
    given = {
        k: v
        for k, v in {
            "caller_id": changes.caller_id,
            "from_name": changes.from_name,
            "from_email": changes.from_email,
            "sms_sender": changes.sms_sender,
        }.items()
        if v is not None
    }
    return replace(sender, **given)
