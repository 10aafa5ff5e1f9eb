"""Wiring of the campaign engine for this process: channels, sender, clock."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from campaigns.campaign import Campaign
from campaigns.channels.base import Channel
from campaigns.channels.call_list import CallListChannel
from campaigns.channels.mailchimp import (
    EmailCampaign,
    MailchimpChannel,
    member_status_recorder,
)
from campaigns.channels.mailchimp.api import Gate
from campaigns.channels.outbox import OutboxChannel
from campaigns.channels.recipients import RecipientLookup, recipient_lookup
from campaigns.channels.twilio_sms import TwilioSmsChannel, carrier_opt_out_recorder
from campaigns.sending import Sender, Throttle
from suppression.errors import ConfigurationError
from worker.context import Context


def channel_factory(ctx: Context) -> Callable[[Campaign], Channel]:
    """The channel of a campaign: call campaigns go to the call list; email goes to
    Mailchimp and SMS to Twilio when their credentials are set; otherwise the outbox."""
    settings = ctx.settings
    outbox = Path(settings.outbox_dir)
    lookup = recipient_lookup(ctx.engine, ctx.hasher, settings.public_url)
    twilio = _twilio(ctx, lookup) if settings.twilio_account_sid else None
    gate = _mailchimp_gate(ctx) if settings.mailchimp_api_key else None
    call_list = CallListChannel()

    def channel_for(campaign: Campaign) -> Channel:
        if campaign.channel == "call":
            return call_list
        if campaign.channel == "sms" and twilio is not None:
            return twilio
        if campaign.channel == "email" and settings.mailchimp_api_key:
            return _mailchimp(ctx, campaign, lookup, gate)
        return OutboxChannel(outbox, campaign.channel)

    return channel_for


def _twilio(ctx: Context, lookup: RecipientLookup) -> TwilioSmsChannel:
    s = ctx.settings
    if not s.twilio_auth_token:
        raise ConfigurationError("TWILIO_AUTH_TOKEN", "is required with TWILIO_ACCOUNT_SID")
    if not s.twilio_messaging_service_sid:
        raise ConfigurationError(
            "TWILIO_MESSAGING_SERVICE_SID", "is required with TWILIO_ACCOUNT_SID"
        )
    return TwilioSmsChannel(
        s.twilio_account_sid or "",
        s.twilio_auth_token,
        s.twilio_messaging_service_sid,
        f"{s.public_url}/webhooks/twilio/status",
        base_url=s.twilio_base_url,
        timeout=s.twilio_timeout,
        on_opt_out=carrier_opt_out_recorder(ctx.engine, ctx.hasher, ctx.clock),
        lookup=lookup,
    )


def _mailchimp(
    ctx: Context, campaign: Campaign, lookup: RecipientLookup, gate: Gate | None
) -> MailchimpChannel:
    s = ctx.settings
    key = s.mailchimp_api_key or ""
    # Mailchimp keys end in "-<data centre>"; MAILCHIMP_SERVER wins when set.
    server = s.mailchimp_server or (key.rsplit("-", 1)[1] if "-" in key else "")
    if not server:
        raise ConfigurationError("MAILCHIMP_SERVER", "is required (e.g. us1)")
    if not s.mailchimp_list_id:
        raise ConfigurationError("MAILCHIMP_LIST_ID", "is required with MAILCHIMP_API_KEY")
    return MailchimpChannel(
        key,
        server,
        s.mailchimp_list_id,
        base_url=s.mailchimp_base_url,
        timeout=s.mailchimp_timeout,
        max_connections=s.mailchimp_max_connections,
        campaign=EmailCampaign.of(campaign, s.organisation_name, s.organisation_number),
        lookup=lookup,
        on_members_gone=member_status_recorder(
            ctx.engine, ctx.hasher, s.mailchimp_list_id, ctx.clock
        ),
        gate=gate,
    )


def _mailchimp_gate(ctx: Context) -> Gate | None:
    """With Redis, Mailchimp's connection limit holds across worker processes; without,
    the channel's own per-process gate is enough (one process)."""
    s = ctx.settings
    if not s.redis_url:
        return None
    from dramatiq.rate_limits import ConcurrentRateLimiter
    from dramatiq.rate_limits.backends import RedisBackend

    limiter = ConcurrentRateLimiter(  # type: ignore[no-untyped-call]
        RedisBackend(url=s.redis_url),
        "mailchimp-connections",
        limit=s.mailchimp_max_connections,
        # A slot of a process that died frees itself after the longest call could take.
        ttl=int(s.mailchimp_timeout * 2_000) + 5_000,
    )

    @contextmanager
    def hold() -> Iterator[object]:
        while True:
            with limiter.acquire(raise_on_failure=False) as acquired:
                if acquired:
                    yield None
                    return
            time.sleep(0.01)

    return hold


def partner_names(ctx: Context) -> dict[str, str]:
    """GD-1: each partner's display name by key, from the partners file ({} without one:
    the source notice then names the partner by its key)."""
    from campaigns.sources.partners_config import load_partners

    if not ctx.settings.partners_file.exists():
        return {}
    return {key: p.display_name for key, p in load_partners(ctx.settings.partners_file).items()}


def sender(ctx: Context, throttle: Throttle | None = None) -> Sender:
    return Sender(
        ctx.engine,
        ctx.hasher,
        ctx.policy,
        channel_factory(ctx),
        ctx.settings.public_url,
        now=ctx.clock,
        throttle=throttle,
        partner_names=partner_names(ctx),
    )
