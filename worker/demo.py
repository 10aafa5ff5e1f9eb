"""`make demo`: the whole product on the embedded default, with synthetic people.

SQLite, the in-process broker, the outbox channel instead of real providers, and a
local folder standing in for the partners' SFTP server. Every step goes through the
same `outreach` commands a marketer uses.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from suppression.calendar import OSLO, is_public_holiday
from worker.context import make_clock

console = Console()
OUT = Path("demo-output")
SECRET_FILE = Path(".outreach-secret")


def error_report_text(path: Path) -> str:
    """An error report as the terminal shows it. The file starts with a BOM, so that Excel
    opens it as UTF-8; a terminal would show the BOM as a stray character."""
    return path.read_text(encoding="utf-8-sig").strip()


def _secret() -> str:
    """OUTREACH_SECRET_KEY from the environment, or a local key file made for the demo."""
    if os.environ.get("OUTREACH_SECRET_KEY"):
        return os.environ["OUTREACH_SECRET_KEY"]
    if not SECRET_FILE.exists():
        SECRET_FILE.write_text(secrets.token_urlsafe(32) + "\n", encoding="utf-8")
        SECRET_FILE.chmod(0o600)
        console.print(
            f"[yellow]created a demo secret key in {SECRET_FILE} (permissions 0600); "
            "in production set OUTREACH_SECRET_KEY and back it up[/]"
        )
    return SECRET_FILE.read_text(encoding="utf-8").strip()


def _demo_now() -> datetime:
    """10:00 in Oslo on the latest working day of this month (today if it is one), so that
    calling hours (TP-5), SMS quiet hours (ES-6) and the register's month (TP-2) hold."""
    today = make_clock(None)().astimezone(OSLO).date()
    day = today
    while day.weekday() >= 5 or is_public_holiday(day):
        day -= timedelta(days=1)
    if day.month != today.month:
        day = today
        while day.weekday() >= 5 or is_public_holiday(day):
            day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 10, 0, tzinfo=OSLO)


def _run(*args: str, quiet: bool = False) -> int:
    from worker.cli import main

    if not quiet:
        console.print(f"\n[bold cyan]$ outreach {' '.join(args)}[/]")
    try:
        main.main(list(args), prog_name="outreach", standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def main() -> int:
    started = time.monotonic()
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "input").mkdir(parents=True)
    now = _demo_now()
    env = {
        "DATABASE_URL": f"sqlite:///{OUT / 'outreach.db'}",
        "OUTREACH_SECRET_KEY": _secret(),
        "OUTREACH_PARTNERS_FILE": str(OUT / "partners.toml"),
        "OUTREACH_OUTBOX_DIR": str(OUT / "outbox"),
        "OUTREACH_DEMO_NOW": now.isoformat(),
        "OUTREACH_PUBLIC_URL": "http://127.0.0.1:8000",
        "OUTREACH_LOG_LEVEL": "WARNING",
    }
    for key in ("REDIS_URL", "MAILCHIMP_API_KEY", "TWILIO_ACCOUNT_SID"):
        os.environ.pop(key, None)  # the embedded default: no Redis, no providers
    os.environ.update(env)
    console.print(
        Panel.fit(
            "outreach demo: SQLite, in-process broker, outbox channel, local partner folders.\n"
            f"The demo's clock reads {now:%A %d %B %Y %H:%M} Europe/Oslo, inside calling and SMS hours.",
            title="outreach",
        )
    )
    from worker.demo_data import generate

    files = generate(OUT / "input", now.replace(tzinfo=None))
    templates = Path(__file__).parent / "demo_templates"

    _run("db", "upgrade")
    # Partners deliver over "SFTP": a local folder per partner, with inbox/archive/errors.
    partners_toml = ["# demo partners: local folders stand in for the partners' SFTP servers"]
    for name, display, key in (
        ("boligpartner", "Boligpartner AS", "partner_a"),
        ("stromtilbud", "Strømtilbud Norge AS", "partner_b"),
    ):
        root = OUT / "sftp" / name
        for sub in ("inbox", "archive", "errors"):
            (root / sub).mkdir(parents=True)
        target = root / "inbox" / files[key].name
        shutil.copy(files[key], target)
        target.with_name(target.name + ".done").touch()  # the upload is complete
        partners_toml += [
            f"[partners.{name}]",
            f'display_name = "{display}"',
            f'local_dir = "sftp/{name}"',
            "",
        ]
    (OUT / "partners.toml").write_text("\n".join(partners_toml), encoding="utf-8")
    _run("partners", "poll")
    for name in ("boligpartner", "stromtilbud"):
        for report in sorted((OUT / "sftp" / name / "errors").glob("*")):
            console.print(f"[dim]error report for {name}: {report}[/]")
            console.print(error_report_text(report), highlight=False)
    _run(
        "customers",
        "import",
        str(files["customers"]),
        "--alarm-contacts",
        str(files["alarm_contacts"]),
    )
    _run("register", "load", str(files["register"]), "--date", now.date().isoformat())
    _run("suppress", "import", str(files["optouts"]), "--reason", "unsubscribe")

    campaigns = [
        ("email", "Vinterkampanje e-post", "email.txt", []),
        ("sms", "Vinterkampanje SMS", "sms.txt", ["--segment-limit", "3", "--rate-limit", "200"]),
        ("call", "Vinterkampanje telefon", "call.txt", ["--caller-id", "+47 21 00 00 00"]),
    ]
    ids: list[int] = []
    for channel, name, template, extra in campaigns:
        from worker.context import Context

        before = _latest_campaign(Context.load())
        _run("campaign", "create", "--name", name, "--channel", channel, "--purpose", "alarm",
             "--template", str(templates / template), "--batch-size", "50", *extra)  # fmt: skip
        campaign_id = _latest_campaign(Context.load())
        if campaign_id == before:
            console.print(f"[red]could not create the {channel} campaign[/]")
            return 1
        ids.append(campaign_id)
        _run("campaign", "preview", str(campaign_id))
        _run("campaign", "launch", str(campaign_id))
    for campaign_id in ids:
        _run(
            "campaign",
            "report",
            str(campaign_id),
            "--html",
            str(OUT / f"campaign-{campaign_id}.html"),
        )
    call_id = ids[2]
    _run("calllist", "export", str(call_id), "--out", str(OUT / "call-list.csv"))
    _show_link(ids[0])
    console.print(
        f"\n[bold green]demo finished in {time.monotonic() - started:.1f} s[/]; everything is in {OUT}/"
    )
    return 0


def _latest_campaign(ctx: object) -> int:
    from sqlalchemy import func, select

    from campaigns.campaign_schema import campaigns
    from worker.context import Context

    assert isinstance(ctx, Context)
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(campaigns.c.id), 0))).scalar_one())


def _show_link(campaign_id: int) -> None:
    from sqlalchemy import select

    from campaigns.campaign_schema import recipients
    from campaigns.schema import contacts
    from suppression import tokens
    from worker.context import Context

    ctx = Context.load()
    with ctx.engine.connect() as conn:
        row = conn.execute(
            select(recipients.c.id, recipients.c.token_id, contacts.c.email)
            .join(contacts, contacts.c.id == recipients.c.contact_id)
            .where(recipients.c.campaign_id == campaign_id, recipients.c.state == "sent")
            .order_by(recipients.c.id)
            .limit(1)
        ).first()
        signer = tokens.signer(conn, ctx.hasher)
    if row is None:
        return
    link = f"{ctx.settings.public_url}/u/{tokens.for_recipient(signer, int(row.id), row.token_id)}"
    env = f"DATABASE_URL={ctx.settings.database_url} OUTREACH_SECRET_KEY=$(cat {SECRET_FILE})"
    console.print(
        Panel.fit(
            f"An unsubscribe link from the e-mail campaign:\n  {link}\n\n"
            f"Serve the unsubscribe pages:\n  {env} .venv/bin/outreach serve\n"
            f"then open the link in a browser. Explain a person's decisions:\n"
            f"  {env} .venv/bin/outreach explain --email {row.email} --campaign {campaign_id}",
            title="try it",
        )
    )


if __name__ == "__main__":
    sys.exit(main())
