"""Partner lead import: rows per second and peak memory, against a naive baseline.

    python -m benchmarks.import_leads [--rows N] [--naive-rows M] [--seed S]

Generates a realistic partner file (Windows-1252, `;`, CRLF, a Norwegian header;
Norwegian names with æøå; phone numbers in every common spelling; about 3 % invalid
rows and 5 % repeated people), imports it into a throwaway PostgreSQL database with
`campaigns.intake` (the figure is end to end: read, decode, validate, hash, merge,
write, commit), and runs a naive importer on a sample of the same rows: csv.DictReader,
each row validated with email-validator and phonenumbers directly, inserted row by
row with a lookup per row. The naive path is too slow for a million rows, so it runs
on the first `--naive-rows` rows (default 20,000) and its rate is measured there; the
fast path imports the same sample into a second database, and the two results are
compared: the same accepted and refused rows, the same canonical values.

Target (issue 3): at least 100,000 rows/s end to end on the 2-core machine, peak memory
at most 500 MB, results identical to the naive path.

Peak memory is the process's peak RSS (ru_maxrss) measured in a child process per
path, so that one path's peak does not hide the other's. CPU time of this process and
of the PostgreSQL backend (read from /proc: the server runs on this machine) says
where the time goes independently of whatever else the machine is running.
"""

from __future__ import annotations

import argparse
import csv
import io
import multiprocessing
import os
import random
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

ORG_NAME = "Trygg Hjem Alarm AS"
ORG_NUMBER = "999999999"
SECRET = b"benchmark-only-secret-0123456789"
HEADER = (
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
    "Skjema",
    "Selskap",
)
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
TARGET_RATE = 100_000  # rows/s end to end (issue 3)
TARGET_PEAK_MB = 500


# --- the partner file ------------------------------------------------------------------

_MOBILE = ("40", "41", "45", "46", "47", "48", *(str(p) for p in range(90, 100)))
_ASCII = str.maketrans({"æ": "ae", "ø": "o", "å": "a", "Æ": "Ae", "Ø": "O", "Å": "A", "é": "e"})


def _pools(seed: int) -> dict[str, list[str]]:
    from faker import Faker

    fake = Faker("no_NO")  # Faker's Norwegian (bokmål) locale; it has no "nb_NO"
    fake.seed_instance(seed)
    firsts = sorted({fake.first_name() for _ in range(3000)})
    lasts = sorted({fake.last_name() for _ in range(3000)})
    # names with æøå for sure, whatever Faker's lists hold
    firsts += ["Åse", "Bjørn", "Kjærsti", "Øystein", "Pål", "Mære"]
    lasts += ["Ødegård", "Bråten", "Sæther", "Løvås", "Æsøy", "Håland"]
    streets = sorted({fake.street_name() for _ in range(2000)})
    places = [(fake.postcode(), fake.city()) for _ in range(1000)]
    return {
        "first": firsts,
        "last": lasts,
        "street": streets,
        "postcode": [p for p, _ in places],
        "city": [c for _, c in places],
    }


def _phone_spelling(national: str, rnd: random.Random) -> str:
    n = national
    return rnd.choice(
        (
            n,
            f"+47 {n[:3]} {n[3:5]} {n[5:]}",
            f"0047 {n}",
            f"{n[:3]} {n[3:5]} {n[5:]}",
            f"+47{n}",
            f"{n[:2]} {n[2:4]} {n[4:6]} {n[6:]}",
        )
    )


def generate(path: Path, rows: int, seed: int = 7) -> dict[str, int]:
    """Write the partner file; returns how many rows were made invalid and repeated."""
    rnd = random.Random(seed)
    pools = _pools(seed)
    firsts, lasts, streets = pools["first"], pools["last"], pools["street"]
    postcodes, cities = pools["postcode"], pools["city"]
    # distinct mobile numbers without keeping them all in a set: a stride coprime with 16M
    stride = 7_919_113
    base = rnd.randrange(10_000_000)
    channels = (
        "e-post",
        "sms",
        "e-post, sms",
        "E-post og SMS",
        "sms;telefon",
        "e-post/sms/telefon",
    )
    stats = {"invalid": 0, "repeated": 0}
    start = datetime(2025, 8, 1, 8, 0)
    recent: list[str] = []
    with path.open("w", encoding="cp1252", newline="") as f:
        out = csv.writer(f, delimiter=";", lineterminator="\r\n")
        out.writerow(HEADER)
        for i in range(rows):
            if recent and rnd.random() < 0.05:
                # the same person again (another campaign, another consent time)
                stats["repeated"] += 1
                f.write(rnd.choice(recent))
                continue
            first, last = rnd.choice(firsts), rnd.choice(lasts)
            k = (base + i * stride) % (len(_MOBILE) * 1_000_000)
            national = _MOBILE[k // 1_000_000] + f"{k % 1_000_000:06d}"
            local = f"{first}.{last}".lower().translate(_ASCII).replace(" ", ".")
            email = f"{local}{i}@{rnd.choice(('example.no', 'example.com', 'Example.NO'))}"
            when = start + timedelta(minutes=rnd.randrange(200_000))
            stamp = (
                when.strftime("%d.%m.%Y %H:%M")
                if rnd.random() < 0.7
                else when.strftime("%Y-%m-%dT%H:%M:%S")
            )
            place = rnd.randrange(len(postcodes))
            row = [
                f"L{i:08d}",
                first,
                last,
                _phone_spelling(national, rnd),
                email,
                f"{rnd.choice(streets)} {rnd.randrange(1, 120)}",
                postcodes[place],
                cities[place],
                stamp,
                rnd.choice(channels),
                "v3",
                "https://example.no/tilbud/alarm",
                ORG_NAME,
            ]
            if rnd.random() < 0.03:
                stats["invalid"] += 1
                broken = rnd.randrange(5)
                if broken == 0:
                    row[4] = email.replace("@", " at ")
                elif broken == 1:
                    row[3] = "12345"
                elif broken == 2:
                    row[8] = ""
                elif broken == 3:
                    row[12] = "Annet Selskap AS"
                else:
                    row[9] = "fax"
            buf = io.StringIO()
            csv.writer(buf, delimiter=";", lineterminator="\r\n").writerow(row)
            line = buf.getvalue()
            f.write(line)
            if len(recent) < 5000:
                recent.append(line)
            elif rnd.random() < 0.01:
                recent[rnd.randrange(5000)] = line
    return stats


def head(path: Path, sample: Path, rows: int) -> None:
    """The first `rows` records of a partner file (with its header) into `sample`."""
    with path.open("rb") as src, sample.open("wb") as dst:
        for n, line in enumerate(src):
            if n > rows:
                break
            dst.write(line)


# --- the two paths -----------------------------------------------------------------------


def _fast(url: str, path: Path) -> dict[str, Any]:
    from sqlalchemy import event

    from campaigns.intake import import_lead_file
    from campaigns.sources.partner import LeadFormat
    from suppression.keys import Hasher
    from suppression.policy import PolicyConfig
    from worker import db

    engine = db.engine_for(url)
    backends: list[int] = []

    @event.listens_for(engine, "connect")
    def _backend(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            backends.append(cur.fetchone()[0])

    with engine.connect():
        pass  # the pooled connection the import will use, and its backend's pid
    backend_before = {pid: _cpu_seconds(pid) for pid in backends}
    started, cpu_started = time.perf_counter(), time.process_time()
    result = import_lead_file(
        engine,
        Hasher(SECRET),
        PolicyConfig(ORG_NAME, ORG_NUMBER),
        "partner:bench",
        LeadFormat(),
        path,
        now=NOW,
    )
    seconds = time.perf_counter() - started
    python_cpu = time.process_time() - cpu_started
    backend_cpu = sum(_cpu_seconds(pid) - backend_before.get(pid, 0.0) for pid in backends)
    engine.dispose()
    return {
        "seconds": seconds,
        "python_cpu": python_cpu,
        "postgres_cpu": backend_cpu,
        "result": result.as_dict(),
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a local process (the PostgreSQL backend), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _naive(url: str, path: Path) -> dict[str, Any]:
    """The obvious importer: DictReader, the libraries on every row, a query per row."""
    import hashlib
    import hmac

    import phonenumbers
    from email_validator import EmailNotValidError, validate_email
    from sqlalchemy import insert, select, update

    from campaigns.schema import consent_records, contact_sources, contacts, import_errors, imports
    from campaigns.sources import values
    from campaigns.sources.partner import FUTURE_TOLERANCE, parse_channels
    from suppression.policy import PolicyConfig, names_us
    from suppression.register import name_address_key
    from worker import db

    policy = PolicyConfig(ORG_NAME, ORG_NUMBER)
    types = {v: k.lower() for k, v in vars(phonenumbers.PhoneNumberType).items() if k.isupper()}

    def digest(kind: str, value: str) -> bytes:
        return hmac.new(SECRET, f"{kind}:{value}".encode(), hashlib.sha256).digest()

    engine = db.engine_for(url)
    started = time.perf_counter()
    accepted = refused = 0
    with engine.begin() as conn, path.open(encoding="cp1252", newline="") as f:
        import_id = conn.execute(
            insert(imports)
            .values(source="partner:bench", filename=path.name, sha256="naive", imported_at=NOW)
            .returning(imports.c.id)
        ).scalar_one()
        for row_no, row in enumerate(csv.DictReader(f, delimiter=";"), start=2):
            bad: list[tuple[str, str]] = []
            cell = {k: (v or "").strip() for k, v in row.items()}
            first, last = " ".join(cell["Fornavn"].split()), " ".join(cell["Etternavn"].split())
            street, city = " ".join(cell["Adresse"].split()), " ".join(cell["Poststed"].split())
            email = phone = phone_type = None
            if cell["E-post"]:
                try:
                    email = validate_email(
                        cell["E-post"], check_deliverability=False
                    ).normalized.lower()
                except EmailNotValidError:
                    bad.append(("E-post", "invalid_email"))
            if cell["Mobil"]:
                try:
                    number = phonenumbers.parse(cell["Mobil"], "NO")
                    if not phonenumbers.is_valid_number(number):
                        raise ValueError
                    phone = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                    phone_type = types.get(phonenumbers.number_type(number), "unknown")
                except (phonenumbers.NumberParseException, ValueError):
                    bad.append(("Mobil", "invalid_phone"))
            if not cell["E-post"] and not cell["Mobil"]:
                bad.append(("E-post", "no_email_or_phone"))
            postal = cell["Postnummer"]
            if postal:
                try:
                    postal = values.postal_code(postal)
                except ValueError as exc:
                    bad.append(("Postnummer", str(exc)))
            given_at = None
            if not cell["Samtykke_tidspunkt"]:
                bad.append(("Samtykke_tidspunkt", "required"))
            else:
                try:
                    given_at = values.parse_time(cell["Samtykke_tidspunkt"])
                    if given_at > NOW + FUTURE_TOLERANCE:
                        bad.append(("Samtykke_tidspunkt", "date_in_future"))
                except ValueError as exc:
                    bad.append(("Samtykke_tidspunkt", str(exc)))
            channels = ""
            try:
                channels = parse_channels(cell["Kanaler"])
            except ValueError as exc:
                bad.append(("Kanaler", str(exc)))
            for header in ("Tekstversjon", "Skjema"):
                if not cell[header]:
                    bad.append((header, "required"))
            if not cell["Selskap"]:
                bad.append(("Selskap", "required"))
            elif not names_us(cell["Selskap"], policy):
                bad.append(("Selskap", "company_not_us"))
            if not bad and not (
                (email and "email" in channels)
                or (phone and ("sms" in channels or "call" in channels))
                or (street and postal and "post" in channels)
            ):
                bad.append(("Kanaler", "no_address_for_consented_channel"))
            contact_id = None
            if not bad:
                eh = digest("email", email) if email else None
                ph = digest("phone", phone) if phone else None
                ce = (
                    conn.execute(select(contacts).where(contacts.c.email_hash == eh)).first()
                    if eh
                    else None
                )
                cp = (
                    conn.execute(select(contacts).where(contacts.c.phone_hash == ph)).first()
                    if ph
                    else None
                )
                target = ce or cp
                if (
                    (ce and cp and ce.id != cp.id)
                    or (target and eh and target.email_hash not in (None, eh))
                    or (target and ph and target.phone_hash not in (None, ph))
                ):
                    bad.append(("E-post", "identity_conflict"))
                elif target is None:
                    nah = None
                    if street and postal and (first or last):
                        full = f"{first} {last}" if first and last else first or last
                        nah = digest("name_address", name_address_key(full, street, postal))
                    contact_id = conn.execute(
                        insert(contacts)
                        .values(
                            email=email, email_hash=eh, phone=phone, phone_type=phone_type,
                            phone_hash=ph, key_id="naive", first_name=first or None,
                            last_name=last or None, street=street or None,
                            postal_code=postal or None, city=city or None,
                            name_address_hash=nah, is_partner_lead=True, is_customer=False,
                            created_at=NOW, updated_at=NOW,
                        )
                        .returning(contacts.c.id)
                    ).scalar_one()  # fmt: skip
                else:
                    contact_id = target.id
                    fill: dict[str, Any] = {}
                    if target.email_hash is None and eh:
                        fill.update(email=email, email_hash=eh)
                    if target.phone_hash is None and ph:
                        fill.update(phone=phone, phone_type=phone_type, phone_hash=ph)
                    erased = (target.email_hash and not target.email) or (
                        target.phone_hash and not target.phone
                    )
                    if not erased:
                        for name, value in (("first_name", first), ("last_name", last)):
                            if value and getattr(target, name) is None:
                                fill[name] = value
                        if (
                            (street or postal)
                            and target.street is None
                            and target.postal_code is None
                        ):
                            nah = None
                            if street and postal and (first or last):
                                full = f"{first} {last}" if first and last else first or last
                                nah = digest("name_address", name_address_key(full, street, postal))
                            fill.update(
                                street=street or None, postal_code=postal or None,
                                city=city or None, name_address_hash=nah,
                            )  # fmt: skip
                    else:
                        fill = {}
                    if fill:
                        conn.execute(
                            update(contacts).where(contacts.c.id == contact_id).values(**fill)
                        )
            if bad:
                refused += 1
                for field, reason in bad:
                    conn.execute(
                        insert(import_errors).values(
                            import_id=import_id, row=row_no, field=field, reason=reason
                        )
                    )
                continue
            accepted += 1
            ref = cell["LeadID"] or None
            conn.execute(
                insert(contact_sources).values(
                    contact_id=contact_id, source="partner:bench", source_ref=ref,
                    import_id=import_id, imported_at=NOW,
                )
            )  # fmt: skip
            conn.execute(
                insert(consent_records).values(
                    contact_id=contact_id, import_id=import_id, source="partner:bench",
                    source_ref=ref, given_at=given_at, channels=channels,
                    wording_version=cell["Tekstversjon"], captured_at=cell["Skjema"],
                    company_named=cell["Selskap"], explicit_call_request=False,
                    multi_company_form=False, from_partner=True, recorded_at=NOW,
                )
            )  # fmt: skip
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds, "result": {"accepted": accepted, "refused": refused}}


def _stored(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int]:
    """What an import left: (lead id and every canonical value) per accepted row, the
    refused (row, field, reason), and the number of contacts."""
    from sqlalchemy import func, select

    from campaigns.schema import consent_records, contacts, import_errors
    from worker import db

    engine = db.engine_for(url)
    c, r = contacts.c, consent_records.c
    with engine.connect() as conn:
        accepted = sorted(
            tuple(row)
            for row in conn.execute(
                select(
                    r.source_ref, c.email, c.email_hash, c.phone, c.phone_type, c.phone_hash,
                    c.first_name, c.last_name, c.street, c.postal_code, c.city,
                    c.name_address_hash, r.given_at, r.channels, r.wording_version,
                    r.captured_at, r.company_named,
                ).join(contacts, contacts.c.id == r.contact_id)
            )
        )  # fmt: skip
        refused = sorted(
            tuple(row)
            for row in conn.execute(
                select(import_errors.c.row, import_errors.c.field, import_errors.c.reason)
            )
        )
        people = int(conn.execute(select(func.count()).select_from(contacts)).scalar_one())
    engine.dispose()
    return accepted, refused, people


_WRITTEN = ("contacts", "contact_sources", "consent_records")


def _database_alone(url: str, into: str, tmp: Path) -> dict[str, float]:
    """PostgreSQL's own time for what the import wrote: the rows of its three tables are
    copied out of `url` (binary COPY) and back into the fresh database `into` in one
    transaction by a client that only streams the bytes. No client could write them
    faster on this machine and server: it is the ceiling of any import of this file."""
    import psycopg

    def dsn(u: str) -> str:
        return u.replace("postgresql+psycopg://", "postgresql://")

    with psycopg.connect(dsn(url)) as source:
        for table in _WRITTEN:
            with (
                (tmp / table).open("wb") as out,
                source.cursor() as cur,
                cur.copy(f"COPY {table} TO STDOUT (FORMAT BINARY)") as copy,
            ):
                for data in copy:
                    out.write(data)
    with psycopg.connect(dsn(into)) as target:
        pid = target.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        cpu_before = _cpu_seconds(pid)
        started = time.perf_counter()
        with target.transaction():
            for table in _WRITTEN:
                with (
                    (tmp / table).open("rb") as src,
                    target.cursor() as cur,
                    cur.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as copy,
                ):
                    while chunk := src.read(1 << 20):
                        copy.write(chunk)
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds(pid) - cpu_before
    for table in _WRITTEN:
        (tmp / table).unlink()
    return {"seconds": seconds, "postgres_cpu": cpu}


def _measured(target: Any, *args: Any) -> dict[str, Any]:
    """Run `target` in a child process; its answer plus the child's peak RSS in MB."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        answer: dict[str, Any] = pool.apply(_child, (target, *args))
    return answer


def _child(target: Any, *args: Any) -> dict[str, Any]:
    answer: dict[str, Any] = target(*args)
    answer["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--naive-rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    from tests.services import throwaway_postgres
    from worker import db

    with TemporaryDirectory() as tmp:
        path, sample = Path(tmp) / "leads.csv", Path(tmp) / "sample.csv"
        t = time.perf_counter()
        stats = generate(path, args.rows, args.seed)
        head(path, sample, min(args.naive_rows, args.rows))
        size = path.stat().st_size
        print(
            f"generated {args.rows:,} rows ({size / 1e6:.0f} MB, Windows-1252, ';', CRLF): "
            f"{stats['invalid']:,} made invalid, {stats['repeated']:,} repeated people "
            f"({time.perf_counter() - t:.0f} s)",
            flush=True,
        )
        n = min(args.naive_rows, args.rows)
        with throwaway_postgres("outreach_bench") as naive_url:
            db.upgrade(naive_url)
            naive = _measured(_naive, naive_url, sample)
            naive_stored = _stored(naive_url)
        with throwaway_postgres("outreach_bench") as sample_url:
            db.upgrade(sample_url)
            fast_sample = _measured(_fast, sample_url, sample)
            fast_stored = _stored(sample_url)
        same = naive_stored == fast_stored
        print(
            f"naive: {n:,} rows (the first {n:,} of the file) in {naive['seconds']:.1f} s = "
            f"{n / naive['seconds']:,.0f} rows/s, peak {naive['peak_mb']:.0f} MB",
            flush=True,
        )
        print(
            f"fast on the same {n:,} rows: {n / fast_sample['seconds']:,.0f} rows/s; results "
            + (
                f"identical ({len(fast_stored[0]):,} accepted rows with every canonical value, "
                f"{len(fast_stored[1]):,} refusals, {fast_stored[2]:,} contacts)"
                if same
                else "DIFFER: "
                f"accepted {len(set(naive_stored[0]) ^ set(fast_stored[0]))} differ, "
                f"refusals {len(set(naive_stored[1]) ^ set(fast_stored[1]))} differ, "
                f"contacts {naive_stored[2]} vs {fast_stored[2]}"
            ),
            flush=True,
        )
        with throwaway_postgres("outreach_bench") as url:
            db.upgrade(url)
            fast = _measured(_fast, url, path)
            with throwaway_postgres("outreach_bench") as alone_url:
                db.upgrade(alone_url)
                alone = _database_alone(url, alone_url, Path(tmp))
        r = fast["result"]
        print(
            f"fast:  {args.rows:,} rows in {fast['seconds']:.1f} s = "
            f"{args.rows / fast['seconds']:,.0f} rows/s end to end, peak {fast['peak_mb']:.0f} MB; "
            f"accepted {r['accepted']:,}, refused {r['refused']:,}, "
            f"duplicates {r['duplicates']:,}, new contacts {r['new_contacts']:,}",
            flush=True,
        )
        per_row = 1e6 / args.rows
        print(
            f"where the time goes (CPU time, whatever else runs on the machine): this process "
            f"{fast['python_cpu'] * per_row:.1f} us/row (reading, validating, hashing, merging, "
            f"COPY), the PostgreSQL backend {fast['postgres_cpu'] * per_row:.1f} us/row "
            f"(inserts and their index entries, the lookups the key filter leaves); the two "
            f"overlap (a writer thread), so an idle 2-core machine is bound by the larger: "
            f"about {args.rows / max(fast['python_cpu'], fast['postgres_cpu']):,.0f} rows/s",
            flush=True,
        )
        print(
            f"the database alone: writing the same rows in one transaction from a client "
            f"that only streams them (binary COPY) takes PostgreSQL {alone['seconds']:.1f} s "
            f"(CPU {alone['postgres_cpu']:.1f} s), so no import of this file into this "
            f"schema on this machine can beat about {args.rows / alone['seconds']:,.0f} rows/s",
            flush=True,
        )
        rate = args.rows / fast["seconds"]
        print(
            f"target: >= {TARGET_RATE:,} rows/s, <= {TARGET_PEAK_MB} MB: "
            f"{'met' if rate >= TARGET_RATE else 'NOT met'} ({rate:,.0f} rows/s), "
            f"{'met' if fast['peak_mb'] <= TARGET_PEAK_MB else 'NOT met'} "
            f"({fast['peak_mb']:.0f} MB)",
            flush=True,
        )
        load = os.getloadavg()
        print(
            f"load average during the run: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores"
        )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
