"""docs/formats.md against the readers: every header a reader accepts is in its section's
header table, every header there is accepted, and every link into the page has its heading."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from campaigns.calllist import outcomes
from campaigns.calllist.export import HEADER, XLSX_HEADER
from campaigns.importresult import REPORT_HEADER
from campaigns.sources import crm
from campaigns.sources.partner import ALIASES, header_key
from suppression import register
from suppression.lists import EMAIL_HEADERS, PHONE_HEADERS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "formats.md"
# The fields AlarmContactReader asks crm._columns for (a local tuple there).
ALARM_FIELDS = ("customer_id", "name", "phone", "email")


def _lower(name: str) -> str:
    return name.strip().lower()


def _crm_names(fields: Iterable[str]) -> set[str]:
    fields = tuple(fields)
    known = {f.replace("_", "") for f in fields}
    return known | {k for k, v in crm._ALIASES.items() if v in fields}


def _sections() -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        else:
            current.append(line)
    return sections


def _header_tables(lines: list[str]) -> list[list[str]]:
    """The backticked names in the first cell of each table whose first column is `header`."""
    tables: list[list[str]] = []
    inside = False
    for line in lines:
        if not line.startswith("|"):
            inside = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not inside and cells[0] == "header":
            inside = True
            tables.append([])
        elif inside and not set(cells[0]) <= {"-", " "}:
            tables[-1].extend(re.findall(r"`([^`]+)`", cells[0]))
    return tables


def _anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


# section -> (the names its reader accepts, how the reader compares a header)
READERS: dict[str, tuple[set[str], Callable[[str], str]]] = {
    "Partner leads": (set(ALIASES), header_key),
    "CRM customers": (_crm_names(crm.CUSTOMER_FIELDS), header_key),
    "Alarm contacts": (_crm_names(ALARM_FIELDS), header_key),
    "Register snapshot": (set(register._HEADER_ALIASES), _lower),
    "Suppression import": (EMAIL_HEADERS | PHONE_HEADERS, _lower),
    "Call outcomes": (set(outcomes._COLUMN_ALIASES), outcomes._token),
}


@pytest.mark.parametrize("section", sorted(READERS))
def test_reader_headers_match_the_doc(section: str) -> None:
    accepted, key = READERS[section]
    tables = _header_tables(_sections()[section])
    assert len(tables) == 1, f"{section}: expected one header table, found {len(tables)}"
    documented = {key(name) for name in tables[0]}
    expected = {key(name) for name in accepted}
    assert expected - documented == set(), f"{section}: accepted but not documented"
    assert documented - expected == set(), f"{section}: documented but not accepted"


@pytest.mark.parametrize(
    ("section", "headers"),
    [("Call list", [list(HEADER), list(XLSX_HEADER)]), ("Error report", [list(REPORT_HEADER)])],
)
def test_written_headers_match_the_doc(section: str, headers: list[list[str]]) -> None:
    assert _header_tables(_sections()[section]) == headers


def test_every_linked_anchor_is_a_heading() -> None:
    text = DOC.read_text(encoding="utf-8")
    anchors = {_anchor(m) for m in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)}
    files = [*(ROOT / "docs").rglob("*.md"), *(ROOT / "worker").rglob("*.py")]
    linked = {
        (path.relative_to(ROOT).as_posix(), anchor)
        for path in files
        for anchor in re.findall(r"formats\.md#([\w\-]+)", path.read_text(encoding="utf-8"))
    }
    assert linked, "no links into docs/formats.md found"
    assert {(p, a) for p, a in linked if a not in anchors} == set()


def test_the_sections_are_there() -> None:
    names = set(_sections())
    expected = {*READERS, "Call list", "Error report"}
    assert expected - names == set()
