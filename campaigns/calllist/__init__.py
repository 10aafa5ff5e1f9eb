"""Call lists for the call centre, and the outcomes it sends back (TP-1..TP-7, ALL-6).

A call campaign's send path puts its recipients on the list (`channels.call_list`): they
are `listed`, and no one is contacted yet. `export.build_export` and `write_csv` write the
list as a CSV that Excel opens as it is (UTF-8 with BOM, `;`, CRLF), with every cell a
spreadsheet would run as a formula neutralised, or `write_xlsx` as a workbook whose cells
are all text, with Norwegian headers, the address and the call script; `mark_handed`
then makes the people handed over `sent` (ALL-8 counts them from then). It refuses
without a fresh register snapshot (TP-2) or with a hidden or mobile caller id (TP-6),
which campaigns.preflight also checks at create and launch, and checks the ledger
(ALL-6, TP-7) and the register (TP-1) again at export time.

`outcomes.import_outcomes` reads the centre's results: an objection or a reservation becomes
a ledger entry at once (TP-7), keyed by the row's reference and outcome, so importing
the same file twice changes nothing. Notes are never stored (they may hold anything).
`references` makes the opaque row references both directions rely on.
"""

from __future__ import annotations

from campaigns.calllist.export import (
    FORMULA_STARTS,
    HEADER,
    XLSX_HEADER,
    Export,
    ExportRefused,
    build_export,
    caller_id_problem,
    mark_handed,
    neutralise,
    register_problem,
    write_csv,
    write_xlsx,
)
from campaigns.calllist.outcomes import LEDGER_ENTRY, SOURCE, OutcomeImport, import_outcomes
from campaigns.calllist.references import reference, resolve

__all__ = [
    "FORMULA_STARTS",
    "HEADER",
    "LEDGER_ENTRY",
    "SOURCE",
    "XLSX_HEADER",
    "Export",
    "ExportRefused",
    "OutcomeImport",
    "build_export",
    "caller_id_problem",
    "import_outcomes",
    "mark_handed",
    "neutralise",
    "reference",
    "register_problem",
    "resolve",
    "write_csv",
    "write_xlsx",
]
