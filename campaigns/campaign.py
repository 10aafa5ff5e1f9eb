"""Campaigns: creation (with every check that could later refuse its sends or its call
list: campaigns.preflight), audience, lifecycle."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, or_, select, update
from sqlalchemy.sql import Select

from campaigns import templates
from campaigns.campaign_schema import campaigns
from campaigns.schema import contact_sources, contacts
from suppression.errors import OutreachError
from suppression.policy import PolicyConfig

CHANNELS = ("email", "sms", "call")
DRAFT, RUNNING, PAUSED, DONE, CANCELLED = "draft", "running", "paused", "done", "cancelled"
# Allowed lifecycle moves: from -> to.
TRANSITIONS = {
    DRAFT: {RUNNING, CANCELLED},
    RUNNING: {PAUSED, DONE, CANCELLED},
    PAUSED: {RUNNING, CANCELLED},
    DONE: set(),
    CANCELLED: set(),
}


class CampaignError(OutreachError):
    pass


@dataclass(frozen=True)
class Audience:
    """Who a campaign is for: customers, partner leads (all or some partners), postal codes."""

    customers: bool = True
    partner_leads: bool = True
    partners: tuple[str, ...] = ()  # empty: every partner
    postal_prefixes: tuple[str, ...] = ()  # empty: everywhere

    @classmethod
    def from_json(cls, text: str) -> Audience:
        data = json.loads(text)
        return cls(
            customers=bool(data.get("customers", True)),
            partner_leads=bool(data.get("partner_leads", True)),
            partners=tuple(data.get("partners", ())),
            postal_prefixes=tuple(data.get("postal_prefixes", ())),
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    def query(self) -> Select[Any]:
        """The audience's contacts, ordered by id (launch streams them in chunks)."""
        who: list[Any] = []
        if self.customers:
            who.append(contacts.c.is_customer.is_(True))
        if self.partner_leads:
            if self.partners:
                named = exists().where(
                    and_(
                        contact_sources.c.contact_id == contacts.c.id,
                        contact_sources.c.source.in_([f"partner:{p}" for p in self.partners]),
                    )
                )
                who.append(and_(contacts.c.is_partner_lead.is_(True), named))
            else:
                who.append(contacts.c.is_partner_lead.is_(True))
        if not who:
            raise CampaignError("audience: neither customers nor partner leads")
        query = select(contacts).where(or_(*who))
        if self.postal_prefixes:
            query = query.where(
                or_(*[contacts.c.postal_code.startswith(p) for p in self.postal_prefixes])
            )
        return query.order_by(contacts.c.id)


@dataclass(frozen=True)
class Sender:
    """Who the message is from (ALL-7) and, for calls, the caller id shown (TP-6)."""

    from_name: str = ""
    from_email: str = ""
    sms_sender: str = ""
    caller_id: str = ""

    @classmethod
    def from_json(cls, text: str) -> Sender:
        return cls(**json.loads(text))

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass
class Campaign:
    id: int
    name: str
    channel: str
    purpose: str
    template: str
    subject: str
    audience: Audience
    sender: Sender
    rate_limit: int | None
    segment_limit: int | None
    batch_size: int
    state: str
    created_at: datetime
    launched_at: datetime | None = None
    finished_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, m: Any) -> Campaign:
        return cls(
            id=int(m["id"]),
            name=m["name"],
            channel=m["channel"],
            purpose=m["purpose"],
            template=m["template"],
            subject=m["subject"],
            audience=Audience.from_json(m["audience"]),
            sender=Sender.from_json(m["sender"]),
            rate_limit=m["rate_limit"],
            segment_limit=m["segment_limit"],
            batch_size=int(m["batch_size"]),
            state=m["state"],
            created_at=m["created_at"],
            launched_at=m["launched_at"],
            finished_at=m["finished_at"],
        )

    def message_template(self) -> templates.MessageTemplate:
        return templates.MessageTemplate.parse(self.template)


def create(
    conn: Connection,
    *,
    name: str,
    channel: str,
    purpose: str,
    template_text: str,
    organisation_name: str,
    audience: Audience | None = None,
    sender: Sender | None = None,
    rate_limit: int | None = None,
    segment_limit: int | None = None,
    batch_size: int = 500,
    now: datetime,
    policy: PolicyConfig | None = None,
) -> Campaign:
    """Create a draft campaign at `now`; refuses one that could never send or be exported
    (campaigns.preflight: ES-4, ALL-7, GD-1, SM-3, TP-6, TP-2 under `policy`, by default
    the policy's defaults for `organisation_name`), before anything is stored."""
    from campaigns import preflight  # it reads this module's types

    if channel not in CHANNELS:
        raise CampaignError(f"channel: must be one of {', '.join(CHANNELS)}")
    if not purpose.strip():
        raise CampaignError("purpose: a product category is required (ES-2, TP-3)")
    if batch_size < 1 or batch_size > 10_000:
        raise CampaignError("batch_size: must be between 1 and 10000")
    if rate_limit is not None and rate_limit < 1:
        raise CampaignError("rate_limit: must be a positive number of messages per second")
    audience = audience or Audience()
    sender = sender or Sender(from_name=organisation_name)
    template = preflight.check(
        conn,
        channel=channel,
        template_text=template_text,
        audience=audience,
        sender=sender,
        segment_limit=segment_limit,
        config=policy or PolicyConfig(organisation_name=organisation_name),
        now=now,
    )
    campaign_id = conn.execute(
        campaigns.insert().values(
            name=name,
            channel=channel,
            purpose=purpose.strip(),
            template=template_text,
            subject=template.subject,
            audience=audience.to_json(),
            sender=sender.to_json(),
            rate_limit=rate_limit,
            segment_limit=segment_limit,
            batch_size=batch_size,
            state=DRAFT,
            created_at=now,
        )
    ).inserted_primary_key
    assert campaign_id is not None
    return get(conn, int(campaign_id[0]))


def get(conn: Connection, campaign_id: int) -> Campaign:
    row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).first()
    if row is None:
        raise CampaignError(f"campaign {campaign_id}: no such campaign")
    return Campaign.from_row(row._mapping)


def move(conn: Connection, campaign_id: int, to: str, **values: Any) -> Campaign:
    """Move a campaign along its lifecycle; refuses moves that make no sense."""
    current = get(conn, campaign_id)
    if to not in TRANSITIONS[current.state]:
        raise CampaignError(f"campaign {campaign_id}: cannot go from {current.state} to {to}")
    conn.execute(
        update(campaigns)
        .where(campaigns.c.id == campaign_id, campaigns.c.state == current.state)
        .values(state=to, **values)
    )
    return get(conn, campaign_id)
