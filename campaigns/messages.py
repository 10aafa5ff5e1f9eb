"""What the send path hands a channel: one rendered message per claimed recipient."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from campaigns import campaign as campaign_mod
from campaigns.campaign_schema import recipients
from campaigns.channels.base import OutgoingMessage
from campaigns.decisions import among
from campaigns.schema import contact_sources, contacts
from campaigns.templates import source_notice
from suppression import tokens
from suppression.keys import Hasher
from suppression.policy import PolicyConfig


def partner_name(source: str, display_names: Mapping[str, str]) -> str:
    """GD-1: the partner as the person knows it ("Boligpartner AS"), from a contact source
    "partner:<key>" and the partners file's display names by key. A partner no longer in
    the partners file is named by its key: a notice naming the source that way still
    tells the person where we got their data, where no notice would not."""
    key = source.split(":", 1)[1] if ":" in source else source
    return display_names.get(key) or key


def render_messages(
    conn: Connection,
    hasher: Hasher,
    config: PolicyConfig,
    public_url: str,
    camp: campaign_mod.Campaign,
    ids: Sequence[int],
    *,
    partner_names: Mapping[str, str] | None = None,
) -> list[OutgoingMessage]:
    """The claimed recipients' messages, rendered from the campaign's template, each with
    its own unsubscribe link (ES-4, SM-3) and, for partner leads, the source notice
    naming the partner (GD-1) by its display name in `partner_names` (display names
    by partner key, from the partners file: the store keeps only the key)."""
    rows = conn.execute(
        select(
            recipients.c.id,
            recipients.c.token_id,
            recipients.c.contact_id,
            contacts.c.email,
            contacts.c.phone,
            contacts.c.first_name,
            contacts.c.last_name,
            contacts.c.is_partner_lead,
        )
        .join(contacts, contacts.c.id == recipients.c.contact_id)
        .where(among(conn, recipients.c.id, ids))
    ).all()
    partners: dict[int, str] = {}
    lead_ids = [int(r.contact_id) for r in rows if r.is_partner_lead]
    if lead_ids:
        for cid, source in conn.execute(
            select(contact_sources.c.contact_id, contact_sources.c.source)
            .where(
                among(conn, contact_sources.c.contact_id, lead_ids),
                contact_sources.c.source.like("partner:%"),
            )
            .order_by(contact_sources.c.id)
        ):
            partners.setdefault(int(cid), partner_name(source, partner_names or {}))
    template = camp.message_template()
    org = {"name": config.organisation_name, "number": config.organisation_number}
    out = []
    signer = tokens.signer(conn, hasher)
    for r in rows:
        url = f"{public_url}/u/{tokens.for_recipient(signer, int(r.id), r.token_id)}"
        name = " ".join(p for p in (r.first_name, r.last_name) if p)
        notice = source_notice(partners.get(int(r.contact_id)), config.organisation_name)
        values: dict[str, Any] = {
            "unsubscribe_url": url,
            "organisation": org,
            "source_notice": notice,
            "first_name": r.first_name or "",
            "name": name,
        }
        subject, body = template.render(values)
        headers = {}
        if camp.channel == "email":
            # EM-1: one-click unsubscribe where we control the headers.
            headers = {
                "List-Unsubscribe": f"<{url}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
        to = r.email if camp.channel == "email" else r.phone
        personal = {
            "first_name": r.first_name or "",
            "last_name": r.last_name or "",
            "source_notice": notice,
        }
        out.append(
            OutgoingMessage(
                int(r.id), camp.id, to or "", subject, body, url, name, headers, personal
            )
        )
    return out
