"""The clock's jobs, and the intake actors they enqueue, run through a real dramatiq worker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dramatiq
import pytest
from sqlalchemy import func, select

from campaigns import filetraces
from campaigns.campaign_schema import exported_files
from campaigns.schema import contacts, imports
from tests.clock import NOW
from tests.conftest import ORG_NAME, ORG_NUMBER, SECRET
from tests.partner_files import person, write
from worker import actors, clock, settings
from worker.context import Context

pytestmark = pytest.mark.integration


@pytest.fixture
def ctx(store_url: str, tmp_path: Path) -> Iterator[Context]:
    root = tmp_path / "sftp" / "boligpartner"
    for sub in ("inbox", "archive", "errors"):
        (root / sub).mkdir(parents=True)
    partners = tmp_path / "partners.toml"
    partners.write_text(
        '[partners.boligpartner]\ndisplay_name = "Boligpartner AS"\nlocal_dir = "sftp/boligpartner"\n',
        encoding="utf-8",
    )
    s = settings.load(
        DATABASE_URL=store_url,
        OUTREACH_SECRET_KEY=SECRET,
        OUTREACH_ORGANISATION_NAME=ORG_NAME,
        OUTREACH_ORGANISATION_NUMBER=ORG_NUMBER,
        OUTREACH_PARTNERS_FILE=str(partners),
        OUTREACH_OUTBOX_DIR=str(tmp_path / "outbox"),
        # The process's clock (ctx.clock) starts at the suite's instant, not the wall clock's.
        OUTREACH_DEMO_NOW=NOW.isoformat(),
    )
    context = Context(s)
    actors.configure(context)
    yield context
    context.engine.dispose()


def test_the_clock_schedules_reconciliation_polling_and_retention(ctx: Context) -> None:
    names = {name: seconds for name, _func, seconds in clock.jobs(ctx)}
    assert names["reconcile"] == clock.RECONCILE_SECONDS
    assert names["poll partners"] == ctx.settings.sftp_poll_minutes * 60
    assert names["lead retention (GD-2)"] == 24 * 3600


def test_the_polling_job_imports_a_delivered_file_through_a_worker(
    ctx: Context, tmp_path: Path
) -> None:
    inbox = tmp_path / "sftp" / "boligpartner" / "inbox"
    delivered = write(inbox / "leads.csv", [person(n) for n in range(5)])
    delivered.with_name("leads.csv.done").touch()
    broker = actors.broker
    broker.flush_all()
    worker = dramatiq.Worker(broker, worker_timeout=100, worker_threads=1)
    worker.start()
    try:
        poll_job = dict((name, func) for name, func, _ in clock.jobs(ctx))["poll partners"]
        poll_job()  # what the clock does: enqueue the actor
        broker.join("intake")
        worker.join()
    finally:
        worker.stop()
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(imports)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(contacts)).scalar_one() == 5
    assert not delivered.exists()
    assert (tmp_path / "sftp" / "boligpartner" / "archive" / "leads.csv").exists()


def _run(job_name: str, context: Context) -> None:
    """The clock's job `job_name`, as the clock runs it, and a worker doing what it sent."""
    actors.configure(context)
    broker = actors.broker
    broker.flush_all()
    worker = dramatiq.Worker(broker, worker_timeout=100, worker_threads=1)
    worker.start()
    try:
        dict((name, func) for name, func, _ in clock.jobs(context))[job_name]()
        broker.join("intake")
        worker.join()
    finally:
        worker.stop()


def test_the_expiry_job_deletes_archives_and_call_lists_past_their_keeping_time(
    ctx: Context, tmp_path: Path
) -> None:
    """GD-5: kept OUTREACH_ARCHIVE_KEEP_DAYS / OUTREACH_CALLLIST_KEEP_DAYS (30), then gone."""
    inbox = tmp_path / "sftp" / "boligpartner" / "inbox"
    write(inbox / "leads.csv", [person(n) for n in range(3)]).with_name("leads.csv.done").touch()
    _run("poll partners", ctx)
    archived = tmp_path / "sftp" / "boligpartner" / "archive" / "leads.csv"
    call_list = tmp_path / "ringeliste.csv"
    call_list.write_text("Referanse;Navn\r\n", encoding="utf-8-sig")
    with ctx.engine.begin() as conn:
        filetraces.record_export(conn, 1, call_list, now=NOW)
    later: dict[int, tuple[bool, bool]] = {}
    for days in (29, 31):
        at = settings.load(
            **{**_environment(ctx), "OUTREACH_DEMO_NOW": (NOW + timedelta(days=days)).isoformat()}
        )
        context = Context(at)
        try:
            _run("archives and call lists (GD-5)", context)
        finally:
            context.engine.dispose()
        later[days] = (archived.exists(), call_list.exists())
    assert later == {29: (True, True), 31: (False, False)}
    with ctx.engine.connect() as conn:
        assert conn.execute(select(exported_files.c.deleted_at)).scalar_one() is not None


def _environment(ctx: Context) -> dict[str, str]:
    s = ctx.settings
    return {
        "DATABASE_URL": s.database_url,
        "OUTREACH_SECRET_KEY": SECRET,
        "OUTREACH_ORGANISATION_NAME": ORG_NAME,
        "OUTREACH_ORGANISATION_NUMBER": ORG_NUMBER,
        "OUTREACH_PARTNERS_FILE": str(s.partners_file),
        "OUTREACH_OUTBOX_DIR": str(s.outbox_dir),
    }
