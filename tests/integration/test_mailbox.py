"""The company mailbox against a real IMAP server (Dovecot on loopback), on SQLite and
PostgreSQL: opt-out wording becomes ledger entries (ALL-1 for objections and
erasure requests), unclear mails reach the review queue, handled mails move."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import Engine, select

from campaigns.optouts import mailbox, review
from campaigns.optouts.mailbox import MailboxConfig, MailboxError
from suppression.identity import email_identity
from suppression.keys import Hasher
from suppression.ledger import Ledger
from suppression.schema import ledger_entries, review_items
from tests.clock import TestClock
from tests.conftest import Cli
from tests.imap_server import Dovecot
from worker import settings

pytestmark = pytest.mark.integration


DONE = "Avmeldinger/Håndtert"
DONE_ENCODED = "Avmeldinger/H&AOU-ndtert"


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    with Dovecot() as server:
        yield server


@pytest.fixture
def user(dovecot: Dovecot) -> str:
    """A fresh mailbox for each test."""
    return f"post-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def config(dovecot: Dovecot, user: str) -> MailboxConfig:
    return MailboxConfig(
        host=dovecot.host,
        port=dovecot.port,
        user=user,
        password=dovecot.password,
        folder="INBOX",
        done_folder=DONE,
        ssl=False,
        timeout=10,
    )


def mail(
    sender: str,
    subject: str,
    body: str,
    *,
    html: str | None = None,
    message_id: str | None = None,
    **headers: str,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "personvern@example.no"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or make_msgid(domain="example.com")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg.as_bytes()


def suppressed(engine: Engine, hasher: Hasher, address: str, scope: str) -> bool:
    with engine.connect() as conn:
        return Ledger(conn, hasher).status("email", email_identity(address).value).suppressed(scope)


def entries(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(ledger_entries))]


def open_items(engine: Engine) -> list[review.ReviewItem]:
    with engine.connect() as conn:
        return review.items(conn)


def test_opt_out_mails_are_recorded_for_the_sender_and_moved_to_the_done_folder(
    dovecot: Dovecot,
    user: str,
    config: MailboxConfig,
    engine: Engine,
    hasher: Hasher,
    clock: TestClock,
) -> None:
    dovecot.deliver(user, mail("Ola Nordmann <ola@example.com>", "Avmelding", "Avmeld meg, takk."))
    dovecot.deliver(user, mail("kari@example.com", "Hei", "Ikke kontakt meg igjen.\n\nKari"))
    dovecot.deliver(user, mail("per@example.com", "GDPR", "Slett meg og alle mine data."))
    dovecot.deliver(user, mail("nils@example.com", "Faktura", "Jeg har fått feil faktura."))
    dovecot.deliver(
        user,
        mail(
            "mailer-daemon@example.com",
            "Undelivered Mail Returned to Sender",
            "unsubscribe failed",
            Auto_Submitted="auto-replied",
        ),
    )

    report = mailbox.check(engine, hasher, config, now=clock)

    assert (report.read, report.moved) == (5, 5)
    assert suppressed(engine, hasher, "ola@example.com", "email")
    assert not suppressed(engine, hasher, "ola@example.com", "sms")
    for objector in ("kari@example.com", "per@example.com"):  # ALL-1: every channel
        assert all(suppressed(engine, hasher, objector, s) for s in ("email", "sms", "phone"))
    assert not suppressed(engine, hasher, "nils@example.com", "email")
    kinds = sorted(item.kind for item in open_items(engine))
    assert kinds == ["erasure_request", "mail_unclear"]
    assert dovecot.messages(user, "INBOX") == []
    assert len(dovecot.messages(user, DONE_ENCODED)) == 5


def test_a_second_pass_finds_nothing_and_changes_nothing(
    dovecot: Dovecot,
    user: str,
    config: MailboxConfig,
    engine: Engine,
    hasher: Hasher,
    clock: TestClock,
) -> None:
    dovecot.deliver(user, mail("ola@example.com", "Stopp", ""))
    mailbox.check(engine, hasher, config, now=clock)
    again = mailbox.check(engine, hasher, config, now=clock)
    assert again.read == 0
    assert len(entries(engine)) == 1


def test_a_mail_recorded_but_not_yet_moved_is_recorded_once(
    dovecot: Dovecot,
    user: str,
    config: MailboxConfig,
    engine: Engine,
    hasher: Hasher,
    clock: TestClock,
) -> None:
    """As after a crash between the commit and the move: the same mail is read again."""
    raw = mail("ola@example.com", "unsubscribe", "", message_id="<same-mail@example.com>")
    dovecot.deliver(user, raw)
    first = mailbox.check(engine, hasher, config, now=clock)
    assert first.outcomes == {"suppressed": 1}, first
    dovecot.deliver(user, raw)
    report = mailbox.check(engine, hasher, config, now=clock)
    assert report.outcomes == {"already_recorded": 1}
    assert len(entries(engine)) == 1
    assert len(dovecot.messages(user, DONE_ENCODED)) == 2


def test_the_quoted_campaign_in_a_reply_does_not_count_as_the_senders_words(
    dovecot: Dovecot,
    user: str,
    config: MailboxConfig,
    engine: Engine,
    hasher: Hasher,
    clock: TestClock,
) -> None:
    body = (
        "Hva koster kameraet?\n\n"
        "Den 3. juni 2024 kl. 10:00 skrev Trygg Hjem Alarm AS <post@example.no>:\n"
        "> Vil du ikke ha flere tilbud? Avmeld deg her.\n"
    )
    dovecot.deliver(user, mail("ola@example.com", "SV: Stopp tyven!", body))
    mailbox.check(engine, hasher, config, now=clock)
    assert entries(engine) == []
    (item,) = open_items(engine)
    assert item.kind == "mail_unclear"
    assert "Avmeld deg her" not in item.text


def test_an_html_only_mail_is_read_as_text(
    dovecot: Dovecot,
    user: str,
    config: MailboxConfig,
    engine: Engine,
    hasher: Hasher,
    clock: TestClock,
) -> None:
    msg = EmailMessage()
    msg["From"] = "ola@example.com"
    msg["Subject"] = "(ingen emne)"
    msg["Message-ID"] = make_msgid(domain="example.com")
    msg.set_content(
        "<html><body><p>Vennligst <b>meld meg av</b> nyhetsbrevet.</p>"
        "<blockquote>Avmeld deg her</blockquote></body></html>",
        subtype="html",
    )
    dovecot.deliver(user, msg.as_bytes())
    mailbox.check(engine, hasher, config, now=clock)
    assert suppressed(engine, hasher, "ola@example.com", "email")


def test_an_erasure_request_names_the_sender_until_a_person_resolves_it(
    dovecot: Dovecot,
    user: str,
    config: MailboxConfig,
    engine: Engine,
    hasher: Hasher,
    clock: TestClock,
) -> None:
    dovecot.deliver(user, mail("per@example.com", "Slett meg", "Takk."))
    mailbox.check(engine, hasher, config, now=clock)
    (item,) = open_items(engine)
    assert item.kind == "erasure_request"
    assert "per@example.com" in item.text  # the reviewer runs `outreach forget --email ...`
    with engine.begin() as conn:
        resolved, _ = review.resolve(conn, hasher, item.id, "objection", actor="dpo", now=clock())
    assert "per@example.com" not in resolved.text
    assert (resolved.resolution, resolved.resolved_by) == ("objection", "dpo")
    assert suppressed(engine, hasher, "per@example.com", "phone")  # ALL-1 since the mail


def test_a_wrong_password_is_named_without_any_address(
    config: MailboxConfig, engine: Engine, hasher: Hasher, clock: TestClock
) -> None:
    bad = MailboxConfig(
        host=config.host, port=config.port, user=config.user, password="wrong", ssl=False
    )
    with pytest.raises(MailboxError, match="IMAP_USER/IMAP_PASSWORD"):
        mailbox.check(engine, hasher, bad, now=clock)


def test_a_closed_port_is_named_as_the_host_setting(
    config: MailboxConfig, engine: Engine, hasher: Hasher, clock: TestClock
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = MailboxConfig(
        host="127.0.0.1", port=port, user="x", password="y", ssl=False, timeout=5
    )
    with pytest.raises(MailboxError, match="IMAP_HOST"):
        mailbox.check(engine, hasher, closed, now=clock)


def test_moving_works_without_the_move_extension_too(dovecot: Dovecot, user: str) -> None:
    dovecot.deliver(user, mail("ola@example.com", "x", "y"))
    imap = dovecot.client(user)
    try:
        imap.create(mailbox.mailbox_arg(DONE))
        imap.select("INBOX")
        imap.capabilities = tuple(c for c in imap.capabilities if c not in ("MOVE", "UIDPLUS"))
        _, found = imap.uid("SEARCH", "ALL")
        mailbox.move(imap, found[0].split()[0], mailbox.mailbox_arg(DONE))
        imap.close()
    finally:
        imap.logout()
    assert dovecot.messages(user, "INBOX") == []
    assert len(dovecot.messages(user, DONE_ENCODED)) == 1


def test_folder_names_are_sent_in_modified_utf7() -> None:
    assert mailbox.imap_utf7("Håndtert") == "H&AOU-ndtert"
    assert mailbox.imap_utf7("A&B") == "A&-B"
    assert mailbox.imap_utf7("Behandlet") == "Behandlet"


# --- the CLI: review list|resolve and the clock's job --------------------------------


@pytest.fixture
def mailbox_cli(cli: Cli, dovecot: Dovecot, user: str) -> Cli:
    cli.env.update(
        {
            "IMAP_HOST": dovecot.host,
            "IMAP_PORT": str(dovecot.port),
            "IMAP_USER": user,
            "IMAP_PASSWORD": dovecot.password,
            "IMAP_SSL": "false",
            "IMAP_DONE_FOLDER": DONE,
        }
    )
    return cli


def test_review_list_and_resolve_through_the_cli(
    mailbox_cli: Cli, dovecot: Dovecot, user: str, engine: Engine, hasher: Hasher
) -> None:
    dovecot.deliver(user, mail("nils@example.com", "Hmm", "Kan dere la meg få slippe dette?"))
    checked = mailbox_cli("review", "check-mailbox", "--json")
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.output)["read"] == 1

    listed = mailbox_cli("review", "list", "--json")
    (item,) = json.loads(listed.output)
    assert item["kind"] == "mail_unclear"

    resolved = mailbox_cli(
        "review", "resolve", str(item["id"]), "--as", "unsubscribe", "--actor", "kundeservice"
    )
    assert resolved.exit_code == 0, resolved.output
    assert suppressed(engine, hasher, "nils@example.com", "email")
    assert json.loads(mailbox_cli("review", "list", "--json").output) == []
    again = mailbox_cli("review", "resolve", str(item["id"]), "--as", "objection")
    assert again.exit_code != 0
    assert "already resolved" in again.output


def test_resolving_as_ignore_writes_nothing(
    mailbox_cli: Cli, dovecot: Dovecot, user: str, engine: Engine
) -> None:
    dovecot.deliver(user, mail("nils@example.com", "Spørsmål", "Når kommer montøren?"))
    mailbox_cli("review", "check-mailbox")
    (item,) = json.loads(mailbox_cli("review", "list", "--json").output)
    assert mailbox_cli("review", "resolve", str(item["id"]), "--as", "ignore").exit_code == 0
    assert entries(engine) == []
    with engine.connect() as conn:
        (row,) = conn.execute(select(review_items)).all()
    assert row._mapping["resolution"] == "ignore"


def test_check_mailbox_without_imap_settings_does_nothing(cli: Cli) -> None:
    result = cli("review", "check-mailbox", "--json")
    assert json.loads(result.output) == {"configured": False}


def test_the_clock_job_reads_the_mailbox_with_the_settings(
    mailbox_cli: Cli, dovecot: Dovecot, user: str, store_url: str, hasher: Hasher
) -> None:
    from worker.commands.review import check_mailbox
    from worker.context import Context

    dovecot.deliver(user, mail("ola@example.com", "Avmeld", ""))
    ctx = Context(settings.load(**mailbox_cli.env))
    report = check_mailbox(ctx)
    assert report is not None and report.outcomes == {"suppressed": 1}
    ctx.engine.dispose()


def test_an_imap_error_mid_way_is_a_mailbox_error(
    config: MailboxConfig, engine: Engine, hasher: Hasher, clock: TestClock
) -> None:
    missing = MailboxConfig(
        host=config.host,
        port=config.port,
        user=config.user,
        password=config.password,
        folder="Finnes/Ikke",
        ssl=False,
        timeout=10,
    )
    with pytest.raises(MailboxError, match="IMAP_FOLDER"):
        mailbox.check(engine, hasher, missing, now=clock)


def test_erasure_clears_the_texts_of_the_persons_review_items(
    dovecot: Dovecot,
    user: str,
    config: MailboxConfig,
    engine: Engine,
    hasher: Hasher,
    clock: TestClock,
) -> None:
    dovecot.deliver(user, mail("per@example.com", "Slett meg", "Hilsen Per Hansen"))
    dovecot.deliver(user, mail("nils@example.com", "Hmm", "Kan jeg slippe?"))
    mailbox.check(engine, hasher, config, now=clock)
    with engine.begin() as conn:
        cleared = review.clear_texts(conn, hasher.all_digests("email", "per@example.com"))
    assert cleared == 1
    texts = {item.kind: item.text for item in open_items(engine)}
    assert "per@example.com" not in texts["erasure_request"]
    assert "Per Hansen" not in texts["erasure_request"]
    assert "slippe" in texts["mail_unclear"]
