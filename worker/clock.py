"""The clock process: periodic jobs. Run exactly one clock per installation.

Jobs: reconcile campaigns (re-enqueue lost or waiting batches, turn stale `sending`
into `unknown`), poll partners' SFTP folders, read the opt-out mailbox, delete expired
partner leads (GD-2), and enqueue the erasures due at processors (GD-5). Every job is
safe to run twice; a second clock would only waste work, but one is the rule.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler

from campaigns import erasure
from campaigns.reconcile import Reconciled, reconcile
from worker import actors
from worker.context import Context
from worker.services import channel_factory

log = logging.getLogger("outreach.clock")

RECONCILE_SECONDS = 30  # the default of OUTREACH_RECONCILE_SECONDS
ERASURE_SECONDS = 60  # the first retry of a failed erasure comes a minute after it


def reconcile_job(ctx: Context) -> Reconciled:
    """One reconciliation, at the process's clock (`ctx.clock`)."""
    actors.configure(ctx)
    s = ctx.settings
    done = reconcile(
        ctx.engine,
        ctx.clock(),
        actors.enqueue_batch,
        channel_factory(ctx),
        stuck_queued=timedelta(seconds=s.stuck_queued_seconds),
        stuck_sending=timedelta(seconds=s.stuck_sending_seconds),
    )
    if done.reenqueued or done.made_unknown:
        log.info(
            "reconciled: %d batches re-enqueued, %d recipients unknown, %d found sent",
            len(done.reenqueued),
            done.made_unknown,
            done.found_sent,
        )
    return done


def erasure_job(ctx: Context) -> list[int]:
    """Enqueue every erasure destination due at the process's clock (pending, or failed
    and past its backoff): the state is in the store, so an erasure survives a restart."""
    actors.configure(ctx)
    with ctx.engine.begin() as conn:
        due = erasure.claim_due(conn, ctx.clock())
    for destination_id in due:
        actors.erase_at_processors.send(destination_id)
    if due:
        log.info("erasure: %d destinations enqueued", len(due))
    return due


def jobs(ctx: Context) -> list[tuple[str, Callable[[], Any], int]]:
    """(name, function, interval in seconds) of every periodic job."""
    found: list[tuple[str, Callable[[], Any], int]] = [
        ("reconcile", lambda: reconcile_job(ctx), ctx.settings.reconcile_seconds),
        ("erasure at processors (GD-5)", lambda: erasure_job(ctx), ERASURE_SECONDS),
    ]
    found.extend(_optional_jobs(ctx))
    return found


def _optional_jobs(ctx: Context) -> list[tuple[str, Callable[[], Any], int]]:
    extra: list[tuple[str, Callable[[], Any], int]] = []
    poll = getattr(actors, "poll_partners", None)
    if poll is not None:
        minutes = int(getattr(ctx.settings, "sftp_poll_minutes", 5))
        extra.append(("poll partners", lambda: poll.send(), minutes * 60))
    purge = getattr(actors, "purge_expired_leads", None)
    if purge is not None:
        extra.append(("lead retention (GD-2)", lambda: purge.send(), 24 * 3600))
    expire = getattr(actors, "expire_files", None)
    if expire is not None:
        extra.append(("archives and call lists (GD-5)", lambda: expire.send(), 6 * 3600))
    mailbox = getattr(actors, "check_mailbox", None)
    if mailbox is not None and getattr(ctx.settings, "imap_host", None):
        extra.append(("opt-out mailbox", lambda: mailbox.send(), 5 * 60))
    return extra


def run(ctx: Context) -> None:
    scheduler = BlockingScheduler(timezone="Europe/Oslo")
    for name, func, seconds in jobs(ctx):
        scheduler.add_job(
            func, "interval", seconds=seconds, id=name, name=name, max_instances=1, coalesce=True
        )
        log.info("clock job %s every %ds", name, seconds)

    def stop(_signum: int, _frame: object) -> None:
        # SIGTERM: let a running job finish, then leave.
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheduler.start()
