"""Mailchimp email: recipients staged in the audience per batch, one campaign sent at the end
(EM-4, ALL-6, ES-4)."""

from __future__ import annotations

from campaigns.channels.mailchimp.api import MailchimpApi, process_gate
from campaigns.channels.mailchimp.audience import Audience, Member, SyncResult
from campaigns.channels.mailchimp.channel import MailchimpChannel
from campaigns.channels.mailchimp.content import EmailCampaign, render
from campaigns.channels.mailchimp.optouts import member_status_recorder

__all__ = [
    "Audience",
    "EmailCampaign",
    "MailchimpApi",
    "MailchimpChannel",
    "Member",
    "SyncResult",
    "member_status_recorder",
    "process_gate",
    "render",
]
