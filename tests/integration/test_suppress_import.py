"""`outreach suppress import` on both stores: plain lists, CSV with an identity column, and
Mailchimp's unsubscribed / cleaned exports. Bad lines are reported by line number with the
reason and good lines are kept; importing the same file again changes nothing; a file that
cannot be read whole is refused whole (exit 5) and adds nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from suppression.schema import ledger_entries
from tests.conftest import Cli
from worker import db
from worker.output import EXIT_INPUT_REFUSED

pytestmark = pytest.mark.integration


def run_import(cli: Cli, path: Path, *args: str) -> dict[str, Any]:
    result = cli("suppress", "import", str(path), "--json", *args)
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.output)
    return payload


def suppressed(cli: Cli, *identity: str, channel: str | None = None) -> bool:
    args = ["suppress", "check", *identity] + (["--channel", channel] if channel else [])
    code = cli(*args).exit_code
    assert code in (0, 1)
    return code == 1


def ledger_rows(store_url: str) -> list[Any]:
    engine = db.engine_for(store_url)
    with engine.connect() as conn:
        rows = conn.execute(select(ledger_entries).order_by(ledger_entries.c.id)).all()
    engine.dispose()
    return list(rows)


PLAIN = """# customers who wrote to customer service
Ola.Nordmann@Example.COM
+47 412 34 567

not-an-email@
0047 41234568
12
ola.nordmann@example.com
"""


def test_a_plain_list_keeps_good_lines_and_reports_bad_ones_by_line(
    cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "opt-outs.txt"
    path.write_text(PLAIN, encoding="utf-8")
    summary = run_import(cli, path, "--reason", "unsubscribe")
    assert (summary["lines_ok"], summary["added"]) == (4, 3)  # the last line repeats line 2
    assert [(r["line"], r["field"]) for r in summary["refused"]] == [(5, "email"), (7, "phone")]
    assert all(r["reason"] for r in summary["refused"])
    assert suppressed(cli, "--email", "ola.nordmann@example.com")
    assert suppressed(cli, "--phone", "41234567")
    assert suppressed(cli, "--phone", "+4741234568")
    assert not suppressed(cli, "--phone", "41234569")


def test_refusal_reasons_do_not_repeat_the_value(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "opt-outs.txt"
    path.write_text("kari@@example.com\n4123987\n", encoding="utf-8")
    refused = run_import(cli, path, "--reason", "unsubscribe")["refused"]
    assert [r["line"] for r in refused] == [1, 2]
    for r in refused:
        assert r["reason"]
        assert "kari" not in r["reason"] and "4123987" not in r["reason"]
    printed = cli("suppress", "import", str(path), "--reason", "unsubscribe").output
    assert "kari@@" not in printed and "4123987" not in printed


def test_a_plain_list_imported_for_one_channel_suppresses_that_channel(
    cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "sms-stop.txt"
    path.write_text("41234567\n", encoding="utf-8")
    run_import(cli, path, "--reason", "unsubscribe", "--channel", "sms")
    assert suppressed(cli, "--phone", "41234567", channel="sms")
    assert not suppressed(cli, "--phone", "41234567", channel="phone")


CSV = """Navn;E-post;Mobil
Kari Nordmann;kari.nordmann@example.no;412 34 567
Per Hansen;per.hansen@example.no;12

Anne Berg;;41234570
Nils Dahl;;
"""


def test_a_csv_with_e_post_and_mobil_columns_imports_both(
    cli: Cli, tmp_path: Path, store_url: str
) -> None:
    path = tmp_path / "crm-export.csv"
    path.write_text(CSV, encoding="utf-8")
    summary = run_import(cli, path, "--reason", "objection")
    assert summary["lines_ok"] == 4
    # The bad Mobil of line 3 leaves its E-post; line 6 has neither; blank line 4 is counted.
    assert [(r["line"], r["field"]) for r in summary["refused"]] == [(3, "Mobil"), (6, "row")]
    for identity in (
        ("--email", "kari.nordmann@example.no"),
        ("--phone", "41234567"),
        ("--email", "per.hansen@example.no"),
        ("--phone", "41234570"),
    ):
        assert suppressed(cli, *identity), identity
    evidence = sorted(r.evidence_ref for r in ledger_rows(store_url))
    assert evidence == [f"crm-export.csv:line {n}" for n in (2, 2, 3, 5)]


def test_a_csv_with_only_an_email_column_and_commas(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text('"Email","Navn"\n"ola@example.com","Ola"\n', encoding="utf-8")
    summary = run_import(cli, path, "--reason", "unsubscribe")
    assert (summary["added"], summary["refused"]) == (1, [])
    assert suppressed(cli, "--email", "ola@example.com")


MAILCHIMP_UNSUBSCRIBED = (
    '"Email Address","First Name","Last Name","MEMBER_RATING","OPTIN_TIME","UNSUB_TIME",'
    '"UNSUB_CAMPAIGN_TITLE","UNSUB_REASON","LEID","EUID"\n'
    '"ola.nordmann@example.com","Ola","Nordmann",2,"2025-01-10 08:00:00","2026-02-03 14:15:16",'
    '"Vinterkampanje","NORMAL","1","a1"\n'
    '"kari@example","Kari","Nordmann",2,"2025-01-10 08:00:00","2026-02-04 10:00:00",'
    '"Vinterkampanje","NORMAL","2","a2"\n'
    '"per@example.no","Per","Hansen",2,"2025-01-10 08:00:00","3. februar",'
    '"Vinterkampanje","NORMAL","3","a3"\n'
)
MAILCHIMP_CLEANED = (
    '"Email Address","First Name","Last Name","MEMBER_RATING","OPTIN_TIME","CLEAN_TIME",'
    '"CLEAN_CAMPAIGN_TITLE","CLEAN_CAMPAIGN_ID","LEID","EUID"\n'
    '"bounce@example.no","Anne","Berg",1,"2025-01-10 08:00:00","2026-01-20 09:30:00",'
    '"Nyhetsbrev","c1","4","a4"\n'
)


def test_a_mailchimp_unsubscribed_export_keeps_the_unsubscribe_time(
    cli: Cli, tmp_path: Path, store_url: str
) -> None:
    path = tmp_path / "unsubscribed_members_export.csv"
    path.write_text(MAILCHIMP_UNSUBSCRIBED, encoding="utf-8")
    summary = run_import(
        cli, path, "--format", "mailchimp", "--reason", "unsubscribe", "--channel", "email"
    )
    assert summary["added"] == 1
    assert [(r["line"], r["field"]) for r in summary["refused"]] == [
        (3, "Email Address"),
        (4, "UNSUB_TIME"),
    ]
    (row,) = ledger_rows(store_url)
    occurred = row.occurred_at if row.occurred_at.tzinfo else row.occurred_at.replace(tzinfo=UTC)
    assert occurred == datetime(2026, 2, 3, 14, 15, 16, tzinfo=UTC)
    assert (row.scope, row.reason) == ("email", "unsubscribe")
    assert suppressed(cli, "--email", "Ola.Nordmann@example.com", channel="email")


def test_a_mailchimp_cleaned_export_keeps_the_clean_time(
    cli: Cli, tmp_path: Path, store_url: str
) -> None:
    path = tmp_path / "cleaned_members_export.csv"
    path.write_text(MAILCHIMP_CLEANED, encoding="utf-8")
    summary = run_import(
        cli, path, "--format", "mailchimp", "--reason", "hard_bounce", "--channel", "email"
    )
    assert (summary["added"], summary["refused"]) == (1, [])
    (row,) = ledger_rows(store_url)
    occurred = row.occurred_at if row.occurred_at.tzinfo else row.occurred_at.replace(tzinfo=UTC)
    assert occurred == datetime(2026, 1, 20, 9, 30, tzinfo=UTC)
    assert suppressed(cli, "--email", "bounce@example.no", channel="email")


def test_a_file_that_is_not_a_mailchimp_export_is_refused_whole_naming_the_column(
    cli: Cli, tmp_path: Path, store_url: str
) -> None:
    path = tmp_path / "list.csv"
    path.write_text("E-post\nola@example.com\n", encoding="utf-8")
    result = cli(
        "suppress", "import", str(path), "--format", "mailchimp", "--reason", "unsubscribe"
    )
    assert result.exit_code == EXIT_INPUT_REFUSED
    said = " ".join(result.output.split())
    assert f"{path}: missing_column: line 1, header: not a Mailchimp export" in said
    assert ledger_rows(store_url) == []


@pytest.mark.parametrize(
    ("name", "content", "args"),
    [
        ("plain.txt", PLAIN, ()),
        ("crm.csv", CSV, ()),
        ("mc.csv", MAILCHIMP_UNSUBSCRIBED, ("--format", "mailchimp")),
    ],
    ids=["plain", "csv", "mailchimp"],
)
def test_importing_the_same_file_again_changes_nothing(
    cli: Cli, tmp_path: Path, store_url: str, name: str, content: str, args: tuple[str, ...]
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    first = run_import(cli, path, "--reason", "unsubscribe", *args)
    rows = ledger_rows(store_url)
    again = run_import(cli, path, "--reason", "unsubscribe", *args)
    assert first["added"] > 0
    assert again["added"] == 0
    assert again["already_recorded"] == again["lines_ok"] == first["lines_ok"]
    assert ledger_rows(store_url) == rows


def test_an_undecodable_file_is_refused_whole_with_its_line_and_nothing_is_added(
    cli: Cli, tmp_path: Path, store_url: str
) -> None:
    path = tmp_path / "broken.txt"
    path.write_bytes(b"ola@example.com\nkari@example.com\n\x81\x8d@example.com\n")
    result = cli("suppress", "import", str(path), "--reason", "unsubscribe", "--json")
    assert result.exit_code == EXIT_INPUT_REFUSED
    said = " ".join(result.output.split())
    assert f"{path}: not_text: line 3: not UTF-8 or Windows-1252 text" in said
    assert ledger_rows(store_url) == []


FILES_REFUSED_WHOLE = {
    "cut inside the last line": (b"ola@example.com\nkari@example.c", "truncated: line 2"),
    "utf-8 and windows-1252": (
        "bjørn@example.no\n".encode() + "kåre@example.no\n".encode("cp1252"),
        "mixed_encoding: line 2",
    ),
    "utf-16 without its byte order mark": (
        "ola@example.com\nkari@example.com\n".encode("utf-16-le"),
        "not_text: the file looks like UTF-16 (little-endian) without its byte order mark",
    ),
    "binary": (bytes(range(256)) * 4, "not_text: line 1 holds binary data"),
    "empty": (b"", "empty_file: the file is empty"),
    "only comments": (b"# nothing yet\n\n", "empty_file: no line with an email or a phone"),
    "header only": (b"Navn;E-post\n", "empty_file: a header and no rows"),
    "e-post twice": (
        b"E-post;Navn;E-post\nola@example.com;Ola;kari@example.com\n",
        "duplicate_column: line 1, header: columns 1 and 3 are both 'E-post'",
    ),
    "quote left open": (
        b'Navn;E-post\n"Ola;ola@example.com\nKari;kari@example.com\n',
        "unbalanced_quote: line 2",
    ),
}


@pytest.mark.parametrize(
    ("content", "message"), FILES_REFUSED_WHOLE.values(), ids=FILES_REFUSED_WHOLE.keys()
)
def test_a_list_that_cannot_be_read_whole_is_refused_whole_and_adds_nothing(
    cli: Cli, tmp_path: Path, store_url: str, content: bytes, message: str
) -> None:
    path = tmp_path / "opt-outs.csv"
    path.write_bytes(content)
    result = cli("suppress", "import", str(path), "--reason", "unsubscribe")
    assert result.exit_code == EXIT_INPUT_REFUSED, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert ledger_rows(store_url) == []


def test_a_list_with_a_utf_16_byte_order_mark_is_read(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "liste.txt"
    path.write_bytes("Navn\tE-post\r\nBjørn Ås\tbjorn.as@example.no\r\n".encode("utf-16"))
    summary = run_import(cli, path, "--reason", "unsubscribe")
    assert (summary["added"], summary["refused"]) == (1, [])


def test_a_windows_1252_list_is_read(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "liste.csv"
    path.write_bytes("Navn;E-post\nBjørn Ås;bjorn.as@example.no\n".encode("cp1252"))
    summary = run_import(cli, path, "--reason", "unsubscribe")
    assert (summary["added"], summary["refused"]) == (1, [])


def test_the_ledger_holds_no_plaintext_from_an_import(
    cli: Cli, tmp_path: Path, store_url: str
) -> None:
    path = tmp_path / "crm-export.csv"
    path.write_text(CSV, encoding="utf-8")
    run_import(cli, path, "--reason", "objection")
    engine = db.engine_for(store_url)
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(ledger_entries)).scalar_one()
    engine.dispose()
    assert count == 4
    for row in ledger_rows(store_url):
        cells = " ".join(str(v) for v in row)
        for needle in ("kari.nordmann", "example.no", "41234567", "Nordmann"):
            assert needle not in cells


def test_a_mailchimp_export_suppresses_email_only_unless_told_otherwise(
    cli: Cli, tmp_path: Path
) -> None:
    """EM-4: Mailchimp's unsubscribes are email opt-outs; SMS stays as the person left it."""
    export = tmp_path / "unsubscribed.csv"
    export.write_text(
        "Email Address,UNSUB_TIME\nkari@example.com,2026-01-05 10:00:00\n", encoding="utf-8"
    )
    result = cli(
        "suppress", "import", str(export), "--reason", "unsubscribe", "--format", "mailchimp"
    )
    assert result.exit_code == 0, result.output
    assert (
        cli("suppress", "check", "--email", "kari@example.com", "--channel", "email").exit_code == 1
    )
    assert (
        cli("suppress", "check", "--email", "kari@example.com", "--channel", "sms").exit_code == 0
    )


def test_a_long_file_name_is_a_source_the_store_holds(
    cli: Cli, tmp_path: Path, store_url: str
) -> None:
    """`import:` and a 120-character file name exceeded the ledger's 80-character source:
    PostgreSQL refused the insert. Two long names that differ only in the middle stay two
    sources; importing either again changes nothing."""
    first = tmp_path / ("kundeservice-" + "a" * 90 + "-reservasjoner.txt")
    second = tmp_path / ("kundeservice-" + "b" * 90 + "-reservasjoner.txt")
    first.write_text("41234567\n", encoding="utf-8")
    second.write_text("41234567\n", encoding="utf-8")
    assert run_import(cli, first, "--reason", "unsubscribe")["added"] == 1
    assert run_import(cli, second, "--reason", "unsubscribe")["added"] == 1
    assert run_import(cli, first, "--reason", "unsubscribe")["added"] == 0
    sources = {row.source for row in ledger_rows(store_url)}
    assert len(sources) == 2
    assert all(len(s) <= 80 and s.startswith("import:kundeservice-") for s in sources)
    assert suppressed(cli, "--phone", "41234567")


def test_a_source_longer_than_the_store_holds_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "stop.txt"
    path.write_text("41234567\n", encoding="utf-8")
    result = cli("suppress", "import", str(path), "--reason", "unsubscribe", "--source", "x" * 81)
    assert result.exit_code == 2, result.output
    assert "--source" in result.output and "80" in result.output
    assert not suppressed(cli, "--phone", "41234567")
