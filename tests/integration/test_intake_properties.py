"""Whatever a partner sends (random shapes, random bytes, huge fields), the importer
answers with a result, never a crash, and a file is stored whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from campaigns.importresult import ALREADY_IMPORTED, IMPORTED, REFUSED
from campaigns.intake import import_lead_file
from campaigns.schema import consent_records, contact_sources, contacts, import_errors, imports
from campaigns.sources.partner import LeadFormat
from suppression.keys import Hasher
from suppression.policy import PolicyConfig
from suppression.schema import ledger_entries
from tests import clock, partner_files

pytestmark = pytest.mark.integration
NOW = clock.NOW  # the import's moment
TABLES = (imports, import_errors, contacts, contact_sources, consent_records, ledger_entries)
HUGE = 140_000  # past the csv module's field limit (131,072)

cell_text = st.one_of(
    st.text(alphabet=st.sampled_from(list("aeæøåÅ Z09@.;,\t\"'\r\n+-/:\x00é€")), max_size=30),
    st.sampled_from(["ola@example.no", "41234567", "12.03.2025 14:33", "e-post", "ja"]),
)
header = st.one_of(
    st.just(list(partner_files.HEADER)),
    st.permutations(list(partner_files.HEADER)),
    st.lists(
        st.sampled_from([*partner_files.HEADER, "Samtykke", "Navn", "Ukjent", ""]) | cell_text,
        min_size=1,
        max_size=16,
    ),
)


@st.composite
def spreadsheet(draw: st.DrawFn) -> bytes:
    """A CSV with a random header and rows, random shape, sometimes a huge field,
    sometimes a mutated copy of a good row."""
    columns = draw(header)
    rows = draw(
        st.lists(
            st.one_of(
                st.lists(cell_text, min_size=0, max_size=len(columns) + 2),
                st.builds(
                    lambda n, drop: [
                        v for k, v in partner_files.person(n).items() if k not in drop
                    ],
                    st.integers(0, 50),
                    st.sets(st.sampled_from(partner_files.HEADER), max_size=2),
                ),
            ),
            max_size=12,
        )
    )
    if rows and draw(st.booleans()):
        rows[0] = [*rows[0], "x" * draw(st.sampled_from([HUGE, 5_000, 400]))]
    shape = draw(st.sampled_from(sorted(partner_files.SHAPES)))
    encoding, delimiter, newline = partner_files.SHAPES[shape]
    quote = draw(st.booleans())
    lines = []
    for row in [columns, *rows]:
        cells = [f'"{c}"' if quote else c for c in row]
        lines.append(delimiter.join(cells))
    text = newline.join(lines) + draw(st.sampled_from(["", newline]))
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="surrogatepass")


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in TABLES
        }


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.one_of(spreadsheet(), st.binary(max_size=3_000)))
def test_any_file_gives_a_result_and_is_stored_whole_or_not_at_all(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig, tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "partner.csv"
    path.write_bytes(data)
    before = counts(engine)
    result = import_lead_file(
        engine, hasher, policy_config, "partner:fuzz", LeadFormat(), path, now=NOW
    )
    after = counts(engine)
    event(f"status: {result.status}")
    event("some rows accepted" if result.accepted else "no row accepted")
    assert after["ledger_entries"] == before["ledger_entries"]  # ALL-5
    if result.status in (REFUSED, ALREADY_IMPORTED):
        assert after == before
        return
    assert result.status == IMPORTED
    assert result.rows == result.accepted + result.refused
    assert result.refused == len({e.row for e in result.errors})
    with engine.connect() as conn:
        stored = {
            t.name: int(
                conn.execute(
                    select(func.count()).select_from(t).where(t.c.import_id == result.import_id)
                ).scalar_one()
            )
            for t in (consent_records, contact_sources, import_errors)
        }
        header = conn.execute(select(imports).where(imports.c.id == result.import_id)).one()
    # A row repeated within the file (same contact, same evidence) is stored once.
    assert stored["import_errors"] == len(result.errors)
    for table in ("consent_records", "contact_sources"):
        assert (stored[table] > 0) == (result.accepted > 0)
        assert stored[table] <= result.accepted
    assert (header.accepted, header.refused, header.rows_total) == (
        result.accepted,
        result.refused,
        result.rows,
    )
    assert after["imports"] == before["imports"] + 1
    assert after["contacts"] - before["contacts"] == result.new_contacts
