"""The content of a Mailchimp campaign: our template rendered once, with merge tags.

Mailchimp fills in the per-recipient values when it sends: our unsubscribe link
(`*|UNSUBURL|*`, ES-4), the first and last name, the GD-1 source notice
(`*|SRCNOTICE|*`); the organisation's name is ours and the same for everyone (ALL-7).
Mailchimp's own unsubscribe link (`*|UNSUB|*`) is added in a footer: its unsubscribes
come back to us by webhook (EM-1, EM-4).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Final

from campaigns import campaign as campaign_mod
from campaigns.channels.mailchimp.audience import FIRST_NAME, LAST_NAME, NOTICE_FIELD, URL_FIELD
from campaigns.templates import MessageTemplate


def tag(name: str) -> str:
    return f"*|{name}|*"


UNSUB_TAG: Final = tag("UNSUB")  # Mailchimp's own unsubscribe link
FOOTER: Final = "Meld deg av denne e-postlisten hos Mailchimp: " + UNSUB_TAG


@dataclass(frozen=True, slots=True)
class EmailCampaign:
    """What Mailchimp needs of one of our email campaigns."""

    campaign_id: int
    title: str
    template: str  # the campaign's template text (may start with a Subject: line)
    from_name: str
    reply_to: str
    organisation_name: str
    organisation_number: str = ""

    @classmethod
    def of(
        cls, camp: campaign_mod.Campaign, organisation_name: str, organisation_number: str = ""
    ) -> EmailCampaign:
        return cls(
            campaign_id=camp.id,
            title=f"{camp.name} (outreach {camp.id})",
            template=camp.template,
            from_name=camp.sender.from_name or organisation_name,
            reply_to=camp.sender.from_email,
            organisation_name=organisation_name,
            organisation_number=organisation_number,
        )


@dataclass(frozen=True, slots=True)
class Content:
    subject: str
    plain_text: str
    html: str


def render(campaign: EmailCampaign) -> Content:
    template = MessageTemplate.parse(campaign.template)
    values = {
        "unsubscribe_url": tag(URL_FIELD),
        "first_name": tag(FIRST_NAME),
        "name": f"{tag(FIRST_NAME)} {tag(LAST_NAME)}",
        "source_notice": tag(NOTICE_FIELD),
        "organisation": {
            "name": campaign.organisation_name,
            "number": campaign.organisation_number,
        },
    }
    subject, body = template.render(values)
    plain = body.rstrip("\n") + "\n\n" + FOOTER + "\n"
    return Content(subject=subject.strip(), plain_text=plain, html=to_html(plain))


def to_html(text: str) -> str:
    """Plain text as HTML: escaped, line breaks kept, both unsubscribe links clickable."""
    escaped = html.escape(text, quote=True)
    for link in (tag(URL_FIELD), UNSUB_TAG):
        escaped = escaped.replace(link, f'<a href="{link}">{link}</a>')
    lines = escaped.split("\n")
    return "<html><body><p>" + "<br>\n".join(lines) + "</p></body></html>"
