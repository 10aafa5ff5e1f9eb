"""Every check that can later refuse a campaign's sends or its call list, run before anyone
is counted: at `campaign create`, and again at launch (ES-4, ALL-7, GD-1, SM-3, TP-6, TP-2).

Each rule has one implementation, where the rule lives: the template's (ES-4, ALL-7,
GD-1) in campaigns.templates, the segment count (SM-3) in campaigns.sms, the caller id
(TP-6) and the register snapshot (TP-2) in campaigns.calllist.export, which the export
runs again when it writes the list. Run only at the export, a call campaign without a
caller id launched, was counted as contacted and could then never be exported; run at
launch too, because the settings (the organisation's name), the register and the draft
(`campaign edit`) may have changed since the draft was made.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from campaigns import templates
from campaigns.campaign import Audience, CampaignError, Sender
from suppression.policy import PolicyConfig

if TYPE_CHECKING:
    from campaigns.campaign import Campaign


class CampaignRefused(CampaignError):
    """The campaign may not be created or launched as it is; the message names the rule
    and what to do (exit 6, docs/cli.md)."""


def check(
    conn: Connection,
    *,
    channel: str,
    template_text: str,
    audience: Audience,
    sender: Sender,
    segment_limit: int | None,
    config: PolicyConfig,
    now: datetime,
) -> templates.MessageTemplate:
    """The parsed template, or TemplateRefused (ES-4, ALL-7, GD-1, SM-3) or CampaignRefused
    (TP-6, TP-2) naming the first rule the campaign would break."""
    template = templates.check(
        template_text,
        organisation_name=config.organisation_name,
        reaches_partner_leads=audience.partner_leads,
    )
    if channel == "sms":
        from campaigns.sms import check_segments  # SM-3

        check_segments(template, segment_limit, config.organisation_name)
    if channel == "call":
        from campaigns.calllist.export import caller_id_problem, register_problem

        problem = caller_id_problem(sender.caller_id)  # TP-6
        if problem is not None:
            raise CampaignRefused(
                f"{problem}: give a landline or switchboard number with --caller-id"
            )
        stale = register_problem(conn, config, now)  # TP-2
        if stale is not None:
            raise CampaignRefused(stale)
    return template


def check_launch(
    conn: Connection, camp: Campaign, config: PolicyConfig, now: datetime
) -> templates.MessageTemplate:
    """`check` of a draft about to launch; a template refused now is the launch refused
    (exit 6: the draft, not a file given to this command, is what is wrong)."""
    try:
        return check(
            conn,
            channel=camp.channel,
            template_text=camp.template,
            audience=camp.audience,
            sender=camp.sender,
            segment_limit=camp.segment_limit,
            config=config,
            now=now,
        )
    except templates.TemplateRefused as exc:
        raise CampaignRefused(
            f"campaign {camp.id} cannot be launched: {exc}; correct the draft "
            f"(outreach campaign edit {camp.id} --template FILE) and launch again"
        ) from None
    except CampaignRefused as exc:
        raise CampaignRefused(f"campaign {camp.id} cannot be launched: {exc}") from None
