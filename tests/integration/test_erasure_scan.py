"""After `forget`, no byte of the person is left where we keep things (ALL-4, GD-5).

The person is imported, emailed and texted (the outbox), put on an exported call list,
then forgotten through the CLI. A byte scan then looks for their email and phone, in
E.164, national and the partner file's spellings, in UTF-8 and UTF-16, in: the SQLite
file and its write-ahead log, the partner's archive and errors folders (a file refused
whole holds them too), the outbox folder, the call list, and `pg_dump`'s output.
The same scan finds the person who was not forgotten, so a scan that sees nothing
because it reads nothing fails.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from tests import partner_files
from tests.integration.test_key_rotation import World, email, national, phone

pytestmark = pytest.mark.integration
FORGOTTEN, KEPT = 1, 2


def spellings(n: int) -> list[bytes]:
    """Every way the person's email and phone may sit in a file."""
    texts = [
        email(n),
        email(n).upper(),
        phone(n),  # +4741000001
        phone(n).removeprefix("+"),  # 4741000001
        phone(n).removeprefix("+47"),  # 41000001, as the partner file writes it
        national(n),  # 410 00 001
    ]
    return [t.encode(enc) for t in texts for enc in ("utf-8", "utf-16-le", "utf-16-be")]


def found_in(blobs: Iterable[tuple[str, bytes]], n: int) -> list[str]:
    """Where any spelling of person n occurs (case-insensitively for the ASCII ones)."""
    wanted = spellings(n)
    hits = []
    for where, data in blobs:
        lowered = data.lower()
        for needle in wanted:
            if needle in data or needle.lower() in lowered:
                hits.append(where)
                break
    return hits


def files_under(*roots: Path) -> list[tuple[str, bytes]]:
    return [
        (str(path), path.read_bytes())
        for root in roots
        for path in ([root] if root.is_file() else sorted(root.rglob("*")))
        if path.is_file()
    ]


def store_bytes(world: World, engine: Engine) -> list[tuple[str, bytes]]:
    url = make_url(world.url)
    if engine.dialect.name == "sqlite":
        engine.dispose()  # nothing held open: what is on disk is what a thief copies
        path = Path(str(url.database))
        return files_under(*[p for p in path.parent.glob(path.name + "*")])
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    dump = subprocess.run(
        ["pg_dump", "--data-only", "--no-owner", plain], capture_output=True, check=True
    )
    return [("pg_dump", dump.stdout)]


def test_after_forget_no_file_we_keep_holds_the_persons_email_or_phone(
    store_url: str, engine: Engine, tmp_path: Path
) -> None:
    world = World(store_url, engine, tmp_path / "world", rotates=False)
    drop = tmp_path / "drop"  # the partner's folder: inbox, archive, errors
    world.partners.write_text(
        f'[partners.boligpartner]\ndisplay_name = "Boligpartner AS"\nlocal_dir = "{drop}"\n',
        encoding="utf-8",
    )
    (drop / "inbox").mkdir(parents=True)
    rows = [partner_files.person(n) for n in (FORGOTTEN, KEPT)]
    partner_files.write(drop / "inbox" / "leads.csv", rows)
    # Refused whole (no email or phone column), each holding one person all the same.
    for n, name in ((FORGOTTEN, "kontakter.csv"), (KEPT, "andre.csv")):
        cells = {"Fornavn": "Åse", "Kontakt": f"{email(n).upper()} / {national(n)}"}
        partner_files.write(drop / "inbox" / name, [cells], header=("Fornavn", "Kontakt"))
    for name in ("leads.csv", "kontakter.csv", "andre.csv"):
        (drop / "inbox" / (name + ".done")).touch()
    polled = json.dumps(world.json("partners", "poll"))
    assert "archived" in polled and polled.count('"rejected"') == 2, polled
    world.load_register([])  # TP-2: the call list needs a fresh snapshot
    for channel in ("email", "sms"):
        world.send(world.launch(channel))
    calls = world.send(world.launch("call"))
    call_list = tmp_path / "ringeliste.csv"
    world.ok("calllist", "export", str(calls), "--out", str(call_list))
    ours = [world.outbox, call_list, drop / "archive", drop / "errors"]
    before = files_under(*ours) + store_bytes(world, engine)
    assert len(found_in(before, FORGOTTEN)) >= 3, "the scan must see the person first"

    erased = world.json("forget", "--email", email(FORGOTTEN))

    said = {(f["kind"], f["action"]) for f in erased["files"]}
    assert said == {
        ("outbox", "rewritten"),
        ("calllist", "rewritten"),
        ("archive", "rewritten"),
        ("rejected", "deleted"),
    }
    assert [f["file"] for f in erased["files"] if f["kind"] == "rejected"] == ["kontakter.csv"]
    assert all(f["rows_removed"] == 1 for f in erased["files"] if f["action"] == "rewritten")

    after = files_under(*ours) + store_bytes(world, engine)
    assert found_in(after, FORGOTTEN) == []
    kept = found_in(after, KEPT)
    assert str(call_list) in kept, kept
    assert any("outbox" in where for where in kept) and any("archive" in w for w in kept), kept
    assert str(drop / "errors" / "andre.csv") in kept, kept
