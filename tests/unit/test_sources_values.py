"""Single values as spreadsheets write them; delimiters; inbox names; the error report."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from campaigns.importresult import error_report
from campaigns.sources import values
from campaigns.sources.csvfile import encoding_name, sniff_delimiter
from campaigns.sources.inbox import tagged, taken
from suppression.errors import RowError


@pytest.mark.parametrize(
    ("header", "delimiter"),
    [
        ("Fornavn;Etternavn;Mobil", ";"),
        ("Fornavn,Etternavn,Mobil", ","),
        ("Fornavn\tEtternavn\tMobil", "\t"),
        ('"Navn, fullt";Mobil;E-post', ";"),  # a comma inside quotes is not a delimiter
        ("Mobil", ","),
    ],
)
def test_the_delimiter_is_sniffed_from_the_header_line(header: str, delimiter: str) -> None:
    assert sniff_delimiter(header) == delimiter


def test_a_time_across_the_autumn_dst_change_in_oslo_is_read_as_the_first_occurrence() -> None:
    # 27.10.2024 02:30 happens twice in Oslo; a spreadsheet cannot say which: the first.
    assert values.parse_time("27.10.2024 02:30") == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)


def test_times_of_every_hour_of_a_year_with_both_dst_changes_are_oslo_wall_clock_times() -> None:
    # The two common spellings are read by their hour (values._by_hour); each must be
    # the wall-clock time in Oslo (the first one where the autumn change repeats it).
    oslo = ZoneInfo("Europe/Oslo")
    hour = datetime(2024, 1, 1)
    while hour.year == 2024:
        for minute, second in ((0, 0), (29, 7), (59, 59)):
            local = hour.replace(minute=minute, second=second)
            utc = local.replace(tzinfo=oslo).astimezone(UTC)
            assert values.parse_time(local.strftime("%Y-%m-%dT%H:%M:%S")) == utc
            assert values.parse_time(local.strftime("%d.%m.%Y %H:%M")) == utc.replace(second=0)
        hour += timedelta(hours=1)


@pytest.mark.parametrize(
    "text", ["12.09.2025 14:60", "2025-09-12T14:33:60", "31.02.2025 10:00", "12.09.2025 24:00"]
)
def test_a_time_in_a_common_spelling_past_the_clock_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid_date$"):
        values.parse_time(text)


@pytest.mark.parametrize("text", ["", "2024-13-01", "32.01.2024", "yesterday", "12.03.24 10:00"])
def test_a_time_that_is_no_time_is_refused_with_a_stable_reason(text: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid_date$"):
        values.parse_time(text)


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("2026-12-31", date(2026, 12, 31)),
        ("31.12.2026", date(2026, 12, 31)),
        ("1.2.2026", date(2026, 2, 1)),
    ],
)
def test_dates_in_iso_or_norwegian_form(text: str, day: date) -> None:
    assert values.parse_date(text) == day


def test_a_date_with_a_time_is_not_a_date() -> None:
    with pytest.raises(ValueError, match="invalid_date"):
        values.parse_date("31.12.2026 10:00")


@pytest.mark.parametrize(
    ("text", "flag"),
    [("Ja", True), ("x", True), ("yes", True), ("nei", False), ("", False), ("0", False)],
)
def test_yes_and_no_in_norwegian_or_english(text: str, flag: bool) -> None:
    assert values.parse_flag(text) is flag


def test_a_flag_that_is_neither_yes_nor_no_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid_flag"):
        values.parse_flag("kanskje")


@pytest.mark.parametrize(("text", "code"), [("0155", "0155"), ("155", "0155"), ("9 990", "9990")])
def test_postal_codes_are_four_digits(text: str, code: str) -> None:
    assert values.postal_code(text) == code


@pytest.mark.parametrize("text", ["15", "01555", "O155", "٠١٥٥"])
def test_a_postal_code_that_is_not_four_ascii_digits_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid_postal_code"):
        values.postal_code(text)


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("UTF-8", "utf-8-sig"),
        ("windows-1252", "cp1252"),
        ("latin-1", "cp1252"),
        ("utf_16", "utf-16"),
    ],
)
def test_configured_encodings_map_to_the_codecs_we_read_with(name: str, codec: str) -> None:
    assert encoding_name(name) == codec


@pytest.mark.parametrize(
    ("name", "is_taken"),
    [
        ("leads.csv", True),
        ("leads.csv.part", False),
        ("leads.tmp", False),
        ("leads.csv.done", False),
        (".leads.csv", False),
        ("leads.filepart", False),
    ],
)
def test_uploads_in_progress_and_markers_are_never_taken(name: str, is_taken: bool) -> None:
    assert taken(name) is is_taken


def test_a_tag_goes_before_the_suffix_of_a_name_already_archived() -> None:
    assert tagged("leads.csv", "ab12") == "leads.ab12.csv"
    assert tagged("leads", "ab12") == "leads.ab12"


def test_the_error_report_holds_row_field_and_reason_only_and_no_formulas() -> None:
    report = error_report([RowError(3, "E-post", "invalid_email"), RowError(7, "=Mobil", "x")])
    text = report.decode("utf-8-sig")
    assert text == "row,field,reason\r\n3,E-post,invalid_email\r\n7,'=Mobil,x\r\n"
