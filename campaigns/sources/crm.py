"""The CRM's exports: customers, and the alarm contacts customers named.

Both are CSV as `campaigns.sources.csvfile` reads them (UTF-8 or Windows-1252; `;`,
`,` or tab; header in row 1). Headers are matched case-insensitively, ignoring
spaces, `-` and `_`; the Norwegian names in brackets are accepted too.

Customer export (`outreach customers import FILE`):

| header | required | meaning |
| --- | --- | --- |
| customer_id (kundenummer, kunde_id) | yes | the CRM's id of the customer, at most 80 characters |
| first_name (fornavn), last_name (etternavn) | no | |
| email (e-post) | no | |
| phone (mobil, telefon) | no | any common spelling, default region NO |
| street (adresse), postal_code (postnummer), city (poststed) | no | |
| contract_status (kontraktstatus) | yes | active (aktiv), ended (avsluttet), cancelled (oppsagt), suspended (pause), pending (venter) |
| contract_end (kontrakt_slutt) | no | ISO date or dd.mm.yyyy; empty: open-ended |
| product_categories (produktkategorier) | no | e.g. "alarm, smarthus", separated by `,` `;` `|` or `/` |
| email_source (e-post_kilde) | yes | where the email (or number) came from: sale (salg) means collected in connection with a sale (ES-2); anything else (support, web, partner, ...) is kept as given |
| opt_out_offered (reservasjon_tilbudt) | yes | yes/no (ja/nei): was the customer offered to opt out when it was collected (ES-2) |

Alarm contacts (`--alarm-contacts FILE`): customer_id (kundenummer), name (navn: read
only to check the row is one, never stored), phone (telefon, mobil), email (e-post;
optional). Each row needs a valid phone or email. They become ledger exclusions
(ALL-3), hashes only; never contacts. A row that cannot be read refuses the whole list.

Lengths are checked on each value as it is stored, after normalisation (`STORED_LENGTH`):
a refused value refuses its row alone, never the batch it would have been written in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date
from typing import Final, NamedTuple

from campaigns.sources import values
from campaigns.sources.partner import INVALID_EMAIL, INVALID_PHONE, header_key
from suppression.errors import FileRefused, InvalidIdentity, RowError
from suppression.identity import normalise_email, normalise_phone
from suppression.keys import KeyedHash
from suppression.register import name_address_key

# Reason codes (besides those of campaigns.sources.partner and .values).
UNKNOWN_STATUS: Final = "unknown_contract_status"
DUPLICATE_CUSTOMER_ID: Final = "duplicate_customer_id"
NO_PHONE_OR_EMAIL: Final = "no_phone_or_email"

CUSTOMER_FIELDS: Final = (
    "customer_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "street",
    "postal_code",
    "city",
    "contract_status",
    "contract_end",
    "product_categories",
    "email_source",
    "opt_out_offered",
)
_CUSTOMER_REQUIRED: Final = ("customer_id", "contract_status", "email_source", "opt_out_offered")
_ALIASES: Final = {
    "kundenummer": "customer_id",
    "kundeid": "customer_id",
    "kundenr": "customer_id",
    "fornavn": "first_name",
    "etternavn": "last_name",
    "epost": "email",
    "mobil": "phone",
    "telefon": "phone",
    "adresse": "street",
    "postnummer": "postal_code",
    "poststed": "city",
    "kontraktstatus": "contract_status",
    "kontraktslutt": "contract_end",
    "produktkategorier": "product_categories",
    "epostkilde": "email_source",
    "reservasjontilbudt": "opt_out_offered",
    "navn": "name",
}
STATUSES: Final = {
    "active": "active",
    "aktiv": "active",
    "ended": "ended",
    "avsluttet": "ended",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "oppsagt": "cancelled",
    "suspended": "suspended",
    "pause": "suspended",
    "pending": "pending",
    "venter": "pending",
}
FROM_SALE: Final = frozenset({"sale", "salg", "purchase", "kjop", "kjøp"})
# The widths of the columns each customer value is stored in (campaigns.schema:
# customers, contacts, contact_sources), checked on the value after normalisation.
STORED_LENGTH: Final = {
    "customer_id": 80,
    "first_name": 200,
    "last_name": 200,
    "email": 320,
    "street": 300,
    "postal_code": 10,
    "city": 120,
    "product_categories": 400,
    "email_source": 80,
}
_CATEGORY_SPLIT = re.compile(r"\s*[,;|/]\s*")


def _columns(
    file: str, header: Sequence[str], fields: Sequence[str], required: Sequence[str]
) -> dict[str, int]:
    known = {f.replace("_", ""): f for f in fields}
    known.update({k: v for k, v in _ALIASES.items() if v in fields})
    index: dict[str, int] = {}
    for i, name in enumerate(header):
        ours = known.get(header_key(name))
        if ours is None:
            continue
        if ours in index:
            # Refused, not one of them read: the other could be the one that holds the truth.
            raise FileRefused(
                file,
                f"duplicate_column: row 1: columns {index[ours] + 1} and {i + 1} both map "
                f"to {ours}",
            )
        index[ours] = i
    missing = [f for f in required if f not in index]
    if missing:
        raise FileRefused(file, f"missing_column: no column for {', '.join(missing)}")
    return index


class Customer(NamedTuple):
    row: int
    customer_id: str
    email: str | None
    email_hash: bytes | None
    phone: str | None
    phone_type: str | None
    phone_hash: bytes | None
    first_name: str | None
    last_name: str | None
    street: str | None
    postal_code: str | None
    city: str | None
    name_address_hash: bytes | None
    contract_status: str
    contract_end: date | None
    product_categories: str  # canonical: lower case, comma-separated, sorted
    email_source: str
    email_from_sale: bool
    opt_out_offered: bool


class CustomerReader:
    """Validates customer export rows; `read` returns a Customer or appends RowErrors."""

    def __init__(
        self, file: str, header: Sequence[str], digest: Callable[[str, str], bytes]
    ) -> None:
        self.width = len(header)
        self._index = _columns(file, header, CUSTOMER_FIELDS, _CUSTOMER_REQUIRED)
        self._labels = {f: header[i].strip().lstrip("\ufeff") for f, i in self._index.items()}
        self._digest = digest
        self._seen: set[str] = set()

    def label(self, name: str) -> str:
        """The export's own header for one of our fields (for error reports)."""
        return self._labels.get(name, name)

    def read(self, row: int, cells: list[str], errors: list[RowError]) -> Customer | None:
        if len(cells) < self.width or any(v.strip() for v in cells[self.width :]):
            errors.append(RowError(row, "row", "wrong_field_count"))
            return None
        bad: list[tuple[str, str]] = []

        def cell(name: str) -> str:
            i = self._index.get(name)
            text = values.clean(cells[i]) if i is not None else ""
            if "\x00" in text:
                bad.append((name, "invalid_character"))
                return ""
            return text

        customer_id = cell("customer_id")
        if not customer_id:
            bad.append(("customer_id", values.REQUIRED))
        elif customer_id in self._seen:
            bad.append(("customer_id", DUPLICATE_CUSTOMER_ID))
        first, last = cell("first_name"), cell("last_name")
        street, city = cell("street"), cell("city")
        email = phone = phone_type = None
        if raw := cell("email"):
            try:
                email = normalise_email(raw)
            except InvalidIdentity:
                bad.append(("email", INVALID_EMAIL))
        if raw := cell("phone"):
            try:
                number = normalise_phone(raw)
                phone, phone_type = number.e164, number.number_type
            except InvalidIdentity:
                bad.append(("phone", INVALID_PHONE))
        postal = cell("postal_code")
        if postal:
            try:
                postal = values.postal_code(postal)
            except ValueError as exc:
                bad.append(("postal_code", str(exc)))
        status = STATUSES.get(cell("contract_status").casefold())
        if status is None:
            bad.append(("contract_status", UNKNOWN_STATUS))
        contract_end: date | None = None
        if raw := cell("contract_end"):
            try:
                contract_end = values.parse_date(raw)
            except ValueError as exc:
                bad.append(("contract_end", str(exc)))
        categories = ",".join(
            sorted({c.casefold() for c in _CATEGORY_SPLIT.split(cell("product_categories")) if c})
        )
        source = cell("email_source").casefold()
        if not source:
            bad.append(("email_source", values.REQUIRED))
        stored = {
            "customer_id": customer_id,
            "first_name": first,
            "last_name": last,
            "email": email or "",
            "street": street,
            "postal_code": postal,
            "city": city,
            "product_categories": categories,
            "email_source": source,
        }
        # Each value as it is stored: a limit checked before case folding lets 80 "ß"
        # through as 160 characters, and the database refuses the whole batch.
        refused = {f for f, _ in bad}
        bad.extend(
            (f, values.TOO_LONG)
            for f, v in stored.items()
            if len(v) > STORED_LENGTH[f] and f not in refused
        )
        try:
            opt_out_offered = values.parse_flag(cell("opt_out_offered"))
        except ValueError as exc:
            bad.append(("opt_out_offered", str(exc)))
            opt_out_offered = False
        if bad:
            labels = self._labels
            errors.extend(RowError(row, labels.get(f, f), reason) for f, reason in bad)
            return None
        assert status is not None
        self._seen.add(customer_id)
        digest = self._digest
        name_address_hash = None
        if street and postal and (first or last):
            full = f"{first} {last}".strip()
            name_address_hash = digest("name_address", name_address_key(full, street, postal))
        return Customer(
            row,
            customer_id,
            email,
            digest("email", email) if email else None,
            phone,
            phone_type,
            digest("phone", phone) if phone else None,
            first or None,
            last or None,
            street or None,
            postal or None,
            city or None,
            name_address_hash,
            status,
            contract_end,
            categories,
            source,
            source in FROM_SALE,
            opt_out_offered,
        )


class AlarmContact(NamedTuple):
    row: int
    customer_id: str
    identity_kind: str  # email | phone
    digest: bytes
    # During a key rotation, the digests under the previous keys (suppression.keys).
    previous: tuple[KeyedHash, ...] = ()


class AlarmContactReader:
    """Validates alarm-contact rows; each yields one AlarmContact per identity it holds."""

    def __init__(
        self,
        file: str,
        header: Sequence[str],
        digest: Callable[[str, str], bytes],
        previous: Callable[[str, str], tuple[KeyedHash, ...]] | None = None,
    ) -> None:
        self._previous = previous
        self.width = len(header)
        fields = ("customer_id", "name", "phone", "email")
        self._index = _columns(file, header, fields, ("customer_id",))
        if "phone" not in self._index and "email" not in self._index:
            raise FileRefused(file, "missing_column: needs a phone or an email column")
        self._labels = {f: header[i].strip().lstrip("\ufeff") for f, i in self._index.items()}
        self._digest = digest

    def read(self, row: int, cells: list[str], errors: list[RowError]) -> list[AlarmContact]:
        if len(cells) < self.width or any(v.strip() for v in cells[self.width :]):
            errors.append(RowError(row, "row", "wrong_field_count"))
            return []

        def cell(name: str) -> str:
            i = self._index.get(name)
            return cells[i].strip() if i is not None else ""

        labels = self._labels
        customer_id = cell("customer_id")
        bad: list[RowError] = []
        if not customer_id:
            bad.append(RowError(row, labels["customer_id"], values.REQUIRED))
        elif len(customer_id) > 80 or "\x00" in customer_id:
            bad.append(RowError(row, labels["customer_id"], values.TOO_LONG))
            customer_id = ""
        found: list[tuple[str, str]] = []
        if raw := cell("phone"):
            try:
                found.append(("phone", normalise_phone(raw).e164))
            except InvalidIdentity:
                bad.append(RowError(row, labels["phone"], INVALID_PHONE))
        if raw := cell("email"):
            try:
                found.append(("email", normalise_email(raw)))
            except InvalidIdentity:
                bad.append(RowError(row, labels["email"], INVALID_EMAIL))
        if not found and not bad:
            bad.append(RowError(row, labels.get("phone", "phone"), NO_PHONE_OR_EMAIL))
        errors.extend(bad)
        # ALL-3: a valid identity is yielded even when the rest of its row is refused (an
        # alarm contact is never let through); the error is reported, and the import
        # refuses the whole list for it (campaigns.customers).
        previous = self._previous
        return [
            AlarmContact(
                row, customer_id, kind, self._digest(kind, v), previous(kind, v) if previous else ()
            )
            for kind, v in found
        ]
