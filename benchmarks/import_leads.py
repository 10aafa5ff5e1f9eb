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

Peak memory is the process's peak RSS (ru_maxrss) measured in a child process per
path, so that one path's peak does not hide the other's.
"""

from __future__ import annotations

import argparse
import csv
import io
import multiprocessing
import random
import resource
import sys
import time
from collections.abc import Iterator
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
    channels = ("e-post", "sms", "e-post, sms", "E-post og SMS", "sms;telefon", "e-post/sms/telefon")
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
    from campaigns.intake import import_lead_file
    from campaigns.sources.partner import LeadFormat
    from suppression.keys import Hasher
    from suppression.policy import PolicyConfig
    from worker import db

    engine = db.engine_for(url)
    started = time.perf_counter()
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
    engine.dispose()
    return {"seconds": seconds, "result": result.as_dict()}


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--naive-rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    from tests.services import throwaway_postgres
    from worker import db

    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "leads.csv"
        t = time.perf_counter()
        stats = generate(path, args.rows, args.seed)
        size = path.stat().st_size
        print(
            f"generated {args.rows:,} rows ({size / 1e6:.0f} MB, Windows-1252, ';', CRLF): "
            f"{stats['invalid']:,} made invalid, {stats['repeated']:,} repeated people "
            f"({time.perf_counter() - t:.0f} s)"
        )
        with throwaway_postgres("outreach_bench") as url:
            db.upgrade(url)
            fast = _measured(_fast, url, path)
        r = fast["result"]
        print(
            f"fast:  {args.rows:,} rows in {fast['seconds']:.1f} s = "
            f"{args.rows / fast['seconds']:,.0f} rows/s, peak {fast['peak_mb']:.0f} MB; "
            f"accepted {r['accepted']:,}, refused {r['refused']:,}, "
            f"duplicates {r['duplicates']:,}, new contacts {r['new_contacts']:,}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
