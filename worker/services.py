"""Wiring of the campaign engine for this process: channels, sender, clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from campaigns.campaign import Campaign
from campaigns.channels.base import Channel
from campaigns.channels.outbox import OutboxChannel
from campaigns.sending import Sender, Throttle
from suppression.errors import ConfigurationError
from worker.context import Context


def clock(ctx: Context) -> Callable[[], datetime]:
    """The time the engine sees: the real time, or the demo's fixed time (OUTREACH_DEMO_NOW)."""
    if not ctx.settings.demo_now:
        return lambda: datetime.now(UTC)
    try:
        fixed = datetime.fromisoformat(ctx.settings.demo_now)
    except ValueError:
        raise ConfigurationError(
            "OUTREACH_DEMO_NOW", "must be an ISO 8601 time with an offset"
        ) from None
    if fixed.tzinfo is None:
        raise ConfigurationError("OUTREACH_DEMO_NOW", "must carry a UTC offset")
    started = datetime.now(UTC)
    # The demo's clock starts at the fixed time and then runs at the real pace.
    return lambda: fixed + (datetime.now(UTC) - started)


def channel_factory(ctx: Context) -> Callable[[Campaign], Channel]:
    outbox = Path(ctx.settings.outbox_dir)

    def channel_for(campaign: Campaign) -> Channel:
        # Providers (Mailchimp, Twilio, call lists) plug in here when configured; without
        # credentials every campaign goes to the outbox.
        return OutboxChannel(outbox, campaign.channel)

    return channel_for


def sender(ctx: Context, throttle: Throttle | None = None) -> Sender:
    return Sender(
        ctx.engine,
        ctx.hasher,
        ctx.policy,
        channel_factory(ctx),
        ctx.settings.public_url,
        now=clock(ctx),
        throttle=throttle,
    )
