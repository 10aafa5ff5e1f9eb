"""Synthetic Norwegian data for the demo: partner files, CRM export, register, opt-outs.

Names and addresses come from Faker's no_NO (Norwegian Bokmål) locale; email addresses use example.com
and example.no, which can belong to no one. Seeded, so every run makes the same people.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from faker import Faker

from suppression.errors import InvalidIdentity
from suppression.identity import normalise_phone

ORG = "Trygg Hjem Alarm AS"
DOMAINS = ("example.com", "example.no")
_ASCII = {ord("æ"): "ae", ord("ø"): "o", ord("å"): "aa", ord("é"): "e"}
MOBILE_PREFIXES = (
    "40",
    "41",
    "45",
    "46",
    "47",
    "48",
    "90",
    "91",
    "92",
    "93",
    "94",
    "95",
    "97",
    "98",
)


def _mobile(rng: random.Random) -> str:
    """A number of the Norwegian mobile plan (phonenumbers' metadata says which are valid)."""
    while True:
        number = f"{rng.choice(MOBILE_PREFIXES)}{rng.randrange(10**6):06d}"
        try:
            if normalise_phone(number).number_type == "mobile":
                return number
        except InvalidIdentity:
            continue


@dataclass
class Person:
    first: str
    last: str
    email: str
    phone: str  # 8 digits
    street: str
    postal_code: str
    city: str


@dataclass
class DemoData:
    people: list[Person] = field(default_factory=list)
    opted_out: list[str] = field(default_factory=list)


def _people(fake: Faker, rng: random.Random, count: int) -> list[Person]:
    out = []
    used: set[str] = set()
    for n in range(count):
        first, last = fake.first_name(), fake.last_name()
        local = f"{first}.{last}".lower().replace(" ", "")
        local = local.translate(_ASCII)
        phone = _mobile(rng)
        while phone in used:
            phone = _mobile(rng)
        used.add(phone)
        out.append(
            Person(
                first, last, f"{local}{n}@{rng.choice(DOMAINS)}", phone,
                fake.street_address(), fake.postcode(), fake.city(),
            )
        )  # fmt: skip
    return out


def _spell(phone: str, rng: random.Random) -> str:
    """The ways people write a Norwegian mobile number."""
    return rng.choice(
        (
            phone,
            f"+47 {phone[:3]} {phone[3:5]} {phone[5:]}",
            f"0047 {phone}",
            f"{phone[:3]} {phone[3:5]} {phone[5:]}",
            f"+47{phone}",
            f"{phone[:2]} {phone[2:4]} {phone[4:6]} {phone[6:]}",
        )
    )


def _csv(rows: list[list[str]], delimiter: str) -> str:
    buf = io.StringIO()
    csv.writer(
        buf, delimiter=delimiter, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL
    ).writerows(rows)
    return buf.getvalue()


def generate(folder: Path, today: datetime, seed: int = 2026) -> dict[str, Path]:
    """Write every demo input into `folder`; returns their paths by name."""
    fake = Faker("no_NO")  # Faker names Norwegian Bokmål no_NO (it has no nb_NO)
    fake.seed_instance(seed)
    rng = random.Random(seed)
    people = _people(fake, rng, 900)
    partner_a, partner_b, customers = people[:420], people[420:720], people[720:900]
    paths: dict[str, Path] = {}

    # Partner A: a tidy export, UTF-8 with BOM, comma, ISO 8601.
    rows = [["Lead ID", "Fornavn", "Etternavn", "E-post", "Mobil", "Adresse", "Postnummer", "Poststed",
             "Samtykketidspunkt", "Kanaler", "Tekstversjon", "Skjema", "Selskap"]]  # fmt: skip
    for n, p in enumerate(partner_a):
        given = today - timedelta(days=rng.randrange(5, 120), minutes=rng.randrange(1440))
        channels = rng.choice(("e-post,sms", "e-post", "sms", "e-post,sms,telefon"))
        rows.append(
            [f"BP-{1000 + n}", p.first, p.last, p.email, _spell(p.phone, rng), p.street, p.postal_code, p.city,
             given.strftime("%Y-%m-%dT%H:%M:%S"), channels, "v4", "https://boligpartner.example.no/tilbud", ORG]
        )  # fmt: skip
    paths["partner_a"] = folder / "boligpartner_leads_2026-11.csv"
    paths["partner_a"].write_bytes(b"\xef\xbb\xbf" + _csv(rows, ",").encode("utf-8"))

    # Partner B: a messy spreadsheet export, Windows-1252, semicolon, dd.mm.yyyy HH:MM,
    # a line break inside a quoted address, and rows that must be refused.
    rows = [["Navn", "Mobilnummer", "E-post", "Gateadresse", "Postnr", "Sted", "Samtykke dato",
             "Kanal", "Versjon", "Kilde", "Firma"]]  # fmt: skip
    for n, p in enumerate(partner_b):
        given = today - timedelta(days=rng.randrange(3, 240), minutes=rng.randrange(1440))
        street = p.street if n % 37 else f"{p.street}\nOppgang B"
        row = [f"{p.first} {p.last}", _spell(p.phone, rng), p.email, street, p.postal_code, p.city,
               given.strftime("%d.%m.%Y %H:%M"), rng.choice(("SMS", "E-post;SMS", "e-post")), "2.1",
               "strømtilbud-skjema-7", ORG]  # fmt: skip
        if n % 29 == 5:
            row[6] = ""  # no consent time: refused (ES-1)
        elif n % 29 == 11:
            row[10] = "Annet Alarmselskap AS"  # consent names another company: refused (ES-1)
        elif n % 29 == 17:
            row[2], row[1] = "ikke-en-adresse", ""  # no usable address: refused
        elif n % 29 == 23:
            row[1], row[2] = "12 34", ""  # not a phone number: refused
        rows.append(row)
    # A lead both partners delivered: the same person, merged into one contact.
    twin = partner_a[3]
    rows.append([f"{twin.first} {twin.last}", _spell(twin.phone, rng), twin.email, twin.street,
                 twin.postal_code, twin.city, (today - timedelta(days=9)).strftime("%d.%m.%Y %H:%M"),
                 "SMS", "2.1", "strømtilbud-skjema-7", ORG])  # fmt: skip
    paths["partner_b"] = folder / "Eksport fra Excel (strømtilbud).csv"
    paths["partner_b"].write_bytes(_csv(rows, ";").encode("cp1252", errors="replace"))

    # The CRM: customers, some with ended contracts, and the alarm contacts they named.
    rows = [["kundenummer", "fornavn", "etternavn", "e-post", "mobil", "adresse", "postnummer", "poststed",
             "kontraktstatus", "kontrakt_slutt", "produktkategorier", "e-post_kilde", "reservasjon_tilbudt"]]  # fmt: skip
    for n, p in enumerate(customers):
        status = "avsluttet" if n % 9 == 0 else "aktiv"
        end = (today - timedelta(days=40)).strftime("%d.%m.%Y") if status == "avsluttet" else ""
        rows.append([f"K{50000 + n}", p.first, p.last, p.email, _spell(p.phone, rng), p.street, p.postal_code,
                     p.city, status, end, rng.choice(("alarm", "alarm, smarthus", "brannvarsling")),
                     "salg" if n % 7 else "kundeservice", "ja" if n % 11 else "nei"])  # fmt: skip
    paths["customers"] = folder / "crm_kunder.csv"
    paths["customers"].write_text(_csv(rows, ";"), encoding="utf-8")
    rows = [["kundenummer", "navn", "telefon"]]
    for n in range(40):
        owner = customers[n]
        # Every fourth alarm contact is also a partner lead: exclusion wins (ALL-3).
        contact = partner_a[40 + n] if n % 4 == 0 else people[n]
        rows.append(
            [
                f"K{50000 + customers.index(owner)}",
                f"{contact.first} {contact.last}",
                _spell(contact.phone, rng),
            ]
        )
    paths["alarm_contacts"] = folder / "crm_alarmkontakter.csv"
    paths["alarm_contacts"].write_text(_csv(rows, ";"), encoding="utf-8")

    # Reservasjonsregisteret: every sixth person reserved against calls, some against post too.
    rows = [["telefon", "navn", "adresse", "postnummer", "reservasjon"]]
    for n, p in enumerate(people):
        if n % 6 == 0:
            rows.append(
                [
                    p.phone,
                    f"{p.first} {p.last}",
                    p.street,
                    p.postal_code,
                    "begge" if n % 12 == 0 else "telefon",
                ]
            )
    for _ in range(2000):  # the rest of the country, in miniature
        rows.append([_mobile(rng), "", "", "", "telefon"])
    paths["register"] = folder / "reservasjonsregisteret.csv"
    paths["register"].write_text(_csv(rows, ";"), encoding="utf-8")

    # Earlier opt-outs, one per line, as a list exported from the old system.
    lines = ["# avmeldinger fra det gamle systemet"]
    for n in range(0, 420, 17):
        lines.append(partner_a[n].email.upper() if n % 2 else _spell(partner_a[n].phone, rng))
    lines.append("ikke en adresse")
    paths["optouts"] = folder / "tidligere_avmeldinger.txt"
    paths["optouts"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths
