"""Partner lead files as spreadsheet programs write them, with synthetic people.

Shapes (encoding, delimiter, line end):
- `excel_nb`: Excel's "CSV (semikolon-delimited)" on Norwegian Windows: Windows-1252, `;`, CRLF
- `excel_utf8`: Excel's "CSV UTF-8": UTF-8 with BOM, `,`, CRLF
- `sheets`: Google Sheets / LibreOffice: UTF-8 without BOM, `,`, LF
- `tab`: tab-separated UTF-8, LF
- `unicode_text`: Excel's "Unicode text": UTF-16 with BOM, tab, CRLF

People are synthetic: example.no addresses, 4xxxxxxx mobile numbers, names with æøå.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Final

from tests.clock import TODAY, at
from tests.conftest import ORG_NAME

# When the synthetic leads gave their consent: twelve weeks before the suite's instant
# (well inside ES-5's 180 days), at 14:33 Oslo time, a minute that exists on every day.
CONSENT_AT: Final = at(TODAY - timedelta(weeks=12), 14, 33)
CONSENT_TEXT: Final = CONSENT_AT.strftime("%d.%m.%Y %H:%M")  # as the partner writes it

SHAPES: Final = {
    "excel_nb": ("cp1252", ";", "\r\n"),
    "excel_utf8": ("utf-8-sig", ",", "\r\n"),
    "sheets": ("utf-8", ",", "\n"),
    "tab": ("utf-8", "\t", "\n"),
    "unicode_text": ("utf-16", "\t", "\r\n"),
}
HEADER: Final = (
    "LeadID",
    "Fornavn",
    "Etternavn",
    "Mobil",
    "E-post",
    "Adresse",
    "Postnummer",
    "Poststed",
    "Samtykke_tidspunkt",
    "Kanaler",
    "Tekstversjon",
    "Skjema/URL",
    "Selskap",
)
FIRST: Final = ("Åse", "Bjørn", "Kjærsti", "Øystein", "Pål", "Ærlend", "Siri", "Håkon")
LAST: Final = ("Ødegård", "Bråten", "Sæther", "Løvås", "Æsøy", "Håland", "Berg", "Dæhli")


def person(n: int, **changes: str) -> dict[str, str]:
    """Lead number `n`: a distinct email and phone per n; `changes` by header name."""
    row = {
        "LeadID": f"L-{n:05d}",
        "Fornavn": FIRST[n % len(FIRST)],
        "Etternavn": LAST[(n // len(FIRST)) % len(LAST)],
        "Mobil": f"{41000000 + n}",
        "E-post": f"lead{n}@example.no",
        "Adresse": f"Kongens gate {n % 90 + 1}",
        "Postnummer": "0153",
        "Poststed": "Oslo",
        "Samtykke_tidspunkt": CONSENT_TEXT,
        "Kanaler": "e-post, sms",
        "Tekstversjon": "v3",
        "Skjema/URL": "https://example.no/tilbud",
        "Selskap": ORG_NAME,
    }
    row.update(changes)
    return row


def e164(n: int) -> str:
    return f"+47{41000000 + n}"


def render(
    rows: Iterable[Mapping[str, str]],
    shape: str = "excel_nb",
    header: Iterable[str] = HEADER,
    quoting: int = csv.QUOTE_MINIMAL,
) -> bytes:
    """The file's bytes; `quoting` as the csv module's (QUOTE_ALL: every field quoted,
    as some exports do)."""
    encoding, delimiter, newline = SHAPES[shape]
    columns = list(header)
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator=newline, quoting=quoting)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns])
    return out.getvalue().encode(encoding)


def write(
    path: Path,
    rows: Iterable[Mapping[str, str]],
    shape: str = "excel_nb",
    header: Iterable[str] = HEADER,
) -> Path:
    path.write_bytes(render(rows, shape, header))
    return path
