"""dramatiq actors: thin verbs that load ids, call the service, record the outcome.

The broker is chosen when this module is imported (`dramatiq worker.actors` imports
it): Redis when REDIS_URL is set, the in-process stub otherwise.
"""

from __future__ import annotations

import dramatiq

from campaigns import erasure
from campaigns.campaign import Campaign
from campaigns.channels.mailchimp.api import MailchimpApi
from campaigns.sending import Sender
from suppression.errors import ConfigurationError
from worker import logs, rate_limit, settings
from worker.broker import INTAKE_QUEUE, SEND_QUEUE, is_embedded, make_broker
from worker.context import Context


def _redis_url() -> str | None:
    try:
        return settings.get().redis_url
    except ConfigurationError:
        # The process cannot work without its settings; it says so when it first uses them.
        return None


logs.configure()
broker = make_broker(_redis_url())
dramatiq.set_broker(broker)

_ctx: Context | None = None
_sender: Sender | None = None
# Embedded mode: a batch that must wait longer than this is left waiting in the store
# (the clock or the next `outreach worker` run picks it up) instead of holding the process.
EMBEDDED_MAX_DELAY_MS = 5_000


def configure(ctx: Context) -> None:
    """Use this context (tests and the embedded runner set it; workers load it lazily)."""
    global _ctx, _sender
    _ctx, _sender = ctx, None


def context() -> Context:
    global _ctx
    if _ctx is None:
        _ctx = Context.load()
    return _ctx


_reservations: rate_limit.Reservations | None = None


def throttle(campaign: Campaign, count: int) -> None:
    """Hold the campaign's messages-per-second across every worker (worker.rate_limit: on
    Redis, or in this process for the embedded worker). Waiting here spends no retry."""
    global _reservations
    if not campaign.rate_limit:
        return
    if _reservations is None:
        if is_embedded(broker):
            _reservations = rate_limit.LocalReservations()
        else:
            url = context().settings.redis_url
            if not url:
                raise ConfigurationError("REDIS_URL", "is required with the Redis broker")
            _reservations = rate_limit.RedisReservations.from_url(url)
    rate_limit.acquire(_reservations, f"campaign-{campaign.id}", count, campaign.rate_limit)


def sender() -> Sender:
    global _sender
    if _sender is None:
        from worker.services import sender as build_sender

        _sender = build_sender(context(), throttle=throttle)
    return _sender


@dramatiq.actor(
    queue_name=SEND_QUEUE,
    max_retries=5,
    min_backoff=1_000,
    max_backoff=60_000,
    time_limit=15 * 60_000,
)
def send_batch(campaign_id: int, batch_no: int) -> None:
    """Send one batch of a campaign (campaigns.sending)."""
    result = sender().send_batch(campaign_id, batch_no)
    if result.delay_until is not None:
        delay_ms = max(0, int((result.delay_until - sender().now()).total_seconds() * 1000))
        if is_embedded(broker) and delay_ms > EMBEDDED_MAX_DELAY_MS:
            return
        send_batch.send_with_options(args=(campaign_id, batch_no), delay=delay_ms)


def enqueue_batch(campaign_id: int, batch_no: int) -> None:
    send_batch.send(campaign_id, batch_no)


@dramatiq.actor(queue_name=INTAKE_QUEUE, max_retries=3, min_backoff=10_000, time_limit=60 * 60_000)
def poll_partners(partner: str | None = None) -> None:
    """Poll the partners' SFTP inboxes and import what has fully arrived (campaigns.polling)."""
    from campaigns.polling import poll
    from campaigns.sources.partners_config import load_partners

    ctx = context()
    partners = load_partners(ctx.settings.partners_file)
    for result in poll(ctx.engine, ctx.hasher, ctx.policy, partners, partner, now=ctx.clock()):
        logs.get("outreach.intake").info("partner polled", result=str(result))


@dramatiq.actor(queue_name=INTAKE_QUEUE, max_retries=3, min_backoff=60_000)
def purge_expired_leads() -> None:
    """GD-2: delete partner leads never converted after the retention period."""
    from campaigns.retention import purge_expired_leads as purge

    ctx = context()
    with ctx.engine.begin() as conn:
        purged = purge(conn, sender().now(), ctx.settings.lead_retention_days)
    logs.get("outreach.retention").info("expired leads purged", purged=str(purged))


@dramatiq.actor(queue_name=INTAKE_QUEUE, max_retries=3, min_backoff=60_000)
def expire_files() -> None:
    """GD-5: delete archived partner files and exported call lists past their keeping time."""
    from campaigns import archives, filetraces
    from campaigns.sources.partners_config import load_partners

    ctx = context()
    s = ctx.settings
    with ctx.engine.begin() as conn:
        calls = filetraces.expire(conn, now=ctx.clock(), keep_days=s.calllist_keep_days)
    log = logs.get("outreach.retention")
    log.info("call lists expired", deleted=str(sum(t.action == filetraces.DELETED for t in calls)))
    if s.partners_file.exists():
        partners = load_partners(s.partners_file)
        for found in archives.expire(
            ctx.engine, partners, now=ctx.clock(), keep_days=s.archive_keep_days
        ):
            log.info("archived files expired", expiry=str(found.as_dict()))


@dramatiq.actor(queue_name=INTAKE_QUEUE, max_retries=3, min_backoff=30_000)
def check_mailbox() -> None:
    """Read the opt-out mailbox over IMAP and record what it holds (campaigns.optouts.mailbox)."""
    from worker.commands.review import check_mailbox as check

    report = check(context())
    logs.get("outreach.mailbox").info("mailbox checked", report=str(report))


def erasure_processors(ctx: Context) -> erasure.Processors:
    """The processors an erasure reaches from this process (GD-5), with the channels'
    credentials, base URLs and timeouts; one left unset is None (its rows then fail,
    naming the setting, and are retried)."""
    s = ctx.settings
    mailchimp = None
    key = s.mailchimp_api_key or ""
    # As the channel's: keys end in "-<data centre>"; MAILCHIMP_SERVER wins when set.
    server = s.mailchimp_server or (key.rsplit("-", 1)[1] if "-" in key else "")
    if key and (server or s.mailchimp_base_url):
        api = MailchimpApi(
            key,
            server,
            s.mailchimp_base_url,
            s.mailchimp_timeout,
            s.mailchimp_max_connections,
        )
        mailchimp = erasure.MailchimpEraser(api)
    twilio = None
    if s.twilio_account_sid and s.twilio_auth_token:
        twilio = erasure.TwilioEraser(
            s.twilio_account_sid, s.twilio_auth_token, s.twilio_base_url, s.twilio_timeout
        )
    return erasure.Processors(mailchimp=mailchimp, twilio=twilio)


@dramatiq.actor(queue_name=INTAKE_QUEUE, max_retries=3, min_backoff=60_000)
def erase_at_processors(destination_id: int) -> None:
    """GD-5: ask the processor of one erasure destination to delete the person
    (campaigns.erasure). A processor's failure is recorded with its next attempt, which
    the clock enqueues again; only a failure of the store itself is retried here."""
    ctx = context()
    with erasure_processors(ctx) as processors:
        done = erasure.attempt(ctx.engine, destination_id, processors, now=ctx.clock())
    if done is not None:
        logs.get("outreach.erasure").info(
            "erasure at processor",
            destination=done.destination,
            status=done.status,
            attempts=str(done.attempts),
        )
