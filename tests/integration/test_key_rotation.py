"""Issue 17: a key rotation reaches everything. The reproduction, through the public paths
(the `outreach` CLI in-process, and the domain functions the CLI, the web app and the
worker call), on SQLite and PostgreSQL.

A rotation is what docs/operations.md tells an operator to do: the old secret moves to
OUTREACH_PREVIOUS_SECRET_KEYS and a new one becomes OUTREACH_SECRET_KEY (in-process:
`Hasher(new, previous=[old])`). Every scenario runs twice, `without_rotation` and
`with_rotation`, and asserts the same outcome both times: what happens without a rotation
is what must happen with one (PRODUCT guarantee 5: a rotation never turns a "no" into a
"yes"). The people are synthetic: lead{n}@example.no, +47 4100000n (tests.partner_files).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from click.testing import Result
from sqlalchemy import Engine, func, select, text

from campaigns import campaign as campaign_mod
from campaigns import launch as launch_mod
from campaigns.campaign_schema import recipients
from campaigns.channels.outbox import OutboxChannel
from campaigns.intake import import_lead_file
from campaigns.optouts import record, twilio, unsubscribe
from campaigns.optouts.events import WebhookRequest
from campaigns.optouts.schema import inbound_events
from campaigns.rekeying import Rekeyed, Rotation, rekey_all
from campaigns.schema import (
    consent_records,
    contact_sources,
    contacts,
    customers,
    imports,
)
from campaigns.sending import Sender
from campaigns.sources.partner import LeadFormat
from suppression.identity import email_identity
from suppression.keys import Hasher, key_id_for
from suppression.policy import PolicyConfig
from suppression.schema import (
    ledger_entries,
    register_entries,
    register_snapshots,
    review_items,
    unsubscribe_tokens,
)
from tests import partner_files
from tests.browser.live_server import MAILCHIMP_SECRET, PUBLIC_URL, LiveServer, make_context
from tests.clock import TestClock, working_morning
from tests.conftest import ORG_NAME, ORG_NUMBER, SECRET, Cli
from worker import db

pytestmark = [pytest.mark.integration, pytest.mark.travel]  # launches and sends (ES-5, TP-2)

# --- Interfaces that do not exist yet (issue 17): their names are guesses, kept here. -------

KEYS_STATUS = ("keys", "status", "--json")
KEYS_REKEY = ("keys", "rekey", "--json")


def keys_retire(key_id: str) -> tuple[str, ...]:
    return ("keys", "retire", key_id)


def rows_per_key(status: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """`keys status --json`'s rows per key id per table, as {table: {key_id: rows}}: the
    mapping under "rows" (or "tables"), or a list of {"table", "key_id", "rows"}."""
    tables = status["rows"] if "rows" in status else status["tables"]
    if isinstance(tables, Mapping):
        return {t: {k: int(n) for k, n in by_key.items()} for t, by_key in tables.items()}
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for row in tables:
        found[row["table"]][row["key_id"]] = int(row["rows"])
    return dict(found)


# The tables that hold a key id beside a digest today: what `keys status` counts.
KEYED_TABLES = (
    contacts,
    ledger_entries,
    register_snapshots,
    unsubscribe_tokens,
    recipients,
    inbound_events,
    review_items,
)
# What a second `keys rekey` must leave exactly as it was.
DATA_TABLES = (
    *KEYED_TABLES,
    register_entries,
    contact_sources,
    consent_records,
    customers,
    imports,
)

# --- The keys ---------------------------------------------------------------------------

OLD = SECRET  # the key every store starts with (tests.conftest)
NEW = "rotated-test-secret-key-fedcba9876543210"
THIRD = "an-even-older-test-secret-key-5566778899"
OLD_ID, NEW_ID = key_id_for(OLD.encode()), key_id_for(NEW.encode())

POLICY = PolicyConfig(organisation_name=ORG_NAME, organisation_number=ORG_NUMBER)
TWILIO_ACCOUNT = "AC" + "0123456789abcdef" * 2
OUR_NUMBER = "+4759000000"
MAILCHIMP_LIST = "a6b5da1054"
# Everything happens on one working-day morning (calls and SMS may go, TP-5, ES-6), a
# minute a step: the partner files' consents are twelve weeks old then (ES-5) and a
# register snapshot dated that day is fresh (TP-2).
START = working_morning()
STEP = timedelta(minutes=1)

TEMPLATES = {
    "email": (
        "Subject: Nytt fra {{ organisation.name }}\n\n"
        "Hei {{ first_name }}!\n{{ source_notice }}\nAvmeld: {{ unsubscribe_url }}\n"
    ),
    "sms": "{{ organisation.name }}: tilbud! {{ source_notice }} Stopp: {{ unsubscribe_url }}",
    "call": "Hei fra {{ organisation.name }}. {{ source_notice }} Avmeld: {{ unsubscribe_url }}",
}
CHANNELS = ("email", "sms", "call")

# --- The people ---------------------------------------------------------------------------

PEOPLE = range(1, 7)
POOL = range(1, 9)


def email(n: int) -> str:
    return f"lead{n}@example.no"


def phone(n: int) -> str:
    return partner_files.e164(n)  # +47 4100000n


def national(n: int) -> str:
    """The phone as a person would write it: "410 00 005"."""
    digits = phone(n).removeprefix("+47")
    return f"{digits[:3]} {digits[3:5]} {digits[5:]}"


def _owners() -> dict[bytes, int]:
    """Each pool person's email and phone digests, under either key: whose a contact is,
    whatever key it is stored under."""
    found: dict[bytes, int] = {}
    for secret in (OLD, NEW):
        hasher = Hasher(secret.encode())
        for n in POOL:
            found[hasher.digest("email", email(n))] = n
            found[hasher.digest("phone", phone(n))] = n
    return found


OWNERS = _owners()

# Decisions at launch (decision, rule) and outcomes at send time (state, rule).
BY_CONSENT = ("send", "ES-1")
OPTED_OUT = ("excluded:channel_opt_out", "ALL-2")
OBJECTED = ("excluded:objection", "ALL-1")
NOT_LISTED = ("send", "TP-1")
LISTED = ("excluded:register", "TP-1")
SENT = ("sent", None)
STOPPED_OPT_OUT = ("excluded_at_send", "ALL-2")
STOPPED_OBJECTION = ("excluded_at_send", "ALL-1")

Outcomes = dict[int, dict[str, list[tuple[str, str | None]]]]


class World:
    """One store and the operator who runs it: the keys in the environment, a clock, a
    partners file, the outbox the sends write to. `rotate()` is the rotation of
    docs/operations.md; a world that `rotates=False` ignores it (the twin that shows what
    must happen)."""

    def __init__(
        self,
        url: str,
        engine: Engine,
        folder: Path,
        *,
        rotates: bool = True,
        secret: str = OLD,
        clock: TestClock | None = None,
        step: timedelta = STEP,
    ) -> None:
        self.url, self.engine, self.rotates = url, engine, rotates
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.outbox = folder / "outbox"
        self.clock = clock or TestClock(START)
        self.step = step
        self.hasher = Hasher(secret.encode())
        self.env: dict[str, str | None] = {
            "OUTREACH_SECRET_KEY": secret,
            "OUTREACH_PREVIOUS_SECRET_KEYS": None,  # unset
        }
        self.partners = folder / "partners.toml"
        self.partners.write_text(
            '[partners.boligpartner]\ndisplay_name = "Boligpartner AS"\n', encoding="utf-8"
        )
        self._files = 0
        self._events = 0

    # -- time and keys -----------------------------------------------------------------

    def tick(self) -> datetime:
        """The next step's instant (aware, UTC)."""
        return self.clock.advance(self.step)

    def rotate(self) -> None:
        if not self.rotates:
            return
        self.hasher = Hasher(NEW.encode(), previous=[OLD.encode()])
        self.env = {"OUTREACH_SECRET_KEY": NEW, "OUTREACH_PREVIOUS_SECRET_KEYS": OLD}

    # -- the CLI -------------------------------------------------------------------------

    def cli(self, *args: str) -> Result:
        runner = Cli(self.url)
        runner.env.update(
            {
                **self.env,
                "OUTREACH_PARTNERS_FILE": str(self.partners),
                "OUTREACH_OUTBOX_DIR": str(self.outbox),
                "OUTREACH_PUBLIC_URL": PUBLIC_URL,
                "OUTREACH_DEMO_NOW": self.tick().isoformat(),
            }
        )
        return runner(*args)

    def ok(self, *args: str) -> Result:
        result = self.cli(*args)
        assert result.exit_code == 0, (args, result.output)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)

    # -- what comes in -------------------------------------------------------------------

    def partner_file(self, people: Iterable[int], tag: str) -> Path:
        self._files += 1
        rows = [partner_files.person(n, LeadID=f"{tag}-{n}") for n in people]
        return partner_files.write(self.folder / f"leads-{self._files}.csv", rows)

    def import_people(self, people: Iterable[int], tag: str = "first") -> dict[str, Any]:
        """A partner file of these people, as `outreach leads import` imports it."""
        path = self.partner_file(people, tag)
        result = import_lead_file(
            self.engine, self.hasher, POLICY, "partner:boligpartner", LeadFormat(), path,
            now=self.tick(),
        )  # fmt: skip
        assert result.status == "imported", result
        return result.as_dict()

    def load_register(self, listed: Iterable[int]) -> None:
        """`outreach register load`: these people's phones reserved, dated today (TP-2)."""
        self._files += 1
        path = self.folder / f"register-{self._files}.csv"
        lines = [
            "telefon;reservasjon",
            "+4799999999;begge",
            *(f"{phone(n)};telefon" for n in listed),
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        today = self.clock.today().isoformat()
        self.ok("register", "load", str(path), "--date", today)

    # -- the ways a person says no ---------------------------------------------------------

    def suppress_email(self, n: int) -> None:
        """`outreach suppress add`: an email opt-out, as the operator types the address."""
        self.ok(
            "suppress", "add", "--email", email(n).upper(), "--reason", "unsubscribe",
            "--channel", "email", "--source", "letter",
        )  # fmt: skip

    def object_by_phone(self, n: int) -> None:
        """`outreach suppress add`: an objection to everything, given by phone."""
        self.ok("suppress", "add", "--phone", national(n), "--reason", "objection")

    def forget(self, n: int) -> None:
        """`outreach forget` (ALL-4)."""
        self.ok("forget", "--email", email(n))

    def sms_stop(self, n: int) -> None:
        """STOPP from the person's phone, as Twilio posts it and the webhook records it."""
        self._events += 1
        sid = f"SM{self._events:032x}"
        request = WebhookRequest.build(
            url=f"{PUBLIC_URL}/webhooks/twilio/inbound",
            method="POST",
            headers={},
            form=[
                ("MessageSid", sid), ("AccountSid", TWILIO_ACCOUNT), ("From", phone(n)),
                ("To", OUR_NUMBER), ("Body", "STOPP"), ("NumMedia", "0"),
            ],
        )  # fmt: skip
        now = self.tick()
        outcomes = record.receive(
            self.engine, self.hasher, twilio.parse_inbound(request, now), now=now
        )
        assert [o.outcome for o in outcomes] == [record.SUPPRESSED], outcomes

    def mailchimp_unsubscribe(self, address: str, fired_at: str) -> None:
        """Mailchimp posts its unsubscribe webhook for `address` (spelled as Mailchimp
        sends it) to the web app (`outreach serve`), configured with this world's keys."""
        form = [
            ("type", "unsubscribe"), ("fired_at", fired_at), ("data[action]", "unsub"),
            ("data[reason]", "manual"), ("data[id]", "8a25ff1d98"),
            ("data[list_id]", MAILCHIMP_LIST), ("data[email]", address),
            ("data[email_type]", "html"), ("data[merges][EMAIL]", address),
            ("data[merges][FNAME]", "Åse"), ("data[campaign_id]", "cb398d21d2"),
        ]  # fmt: skip
        keys = {k: v for k, v in self.env.items() if v is not None}
        ctx = make_context(self.url, **keys, OUTREACH_DEMO_NOW=self.tick().isoformat())
        with LiveServer(ctx) as server, httpx.Client(timeout=30) as client:
            answer = client.post(
                f"{server.url}/webhooks/mailchimp/{MAILCHIMP_SECRET}", data=dict(form)
            )
        assert answer.status_code == 200, answer.text

    def link(self, campaign_id: int, n: int) -> str:
        """The unsubscribe token in the email message person `n` got."""
        messages = OutboxChannel(self.outbox, "email").messages(campaign_id)
        (url,) = [m["unsubscribe_url"] for m in messages if m["to"] == email(n)]
        return str(url).rsplit("/u/", 1)[1]

    def click_unsubscribe(self, token: str) -> None:
        """The person presses "unsubscribe" on the page the link opens (ALL-2)."""
        stopped = unsubscribe.submit(
            self.engine, self.hasher, token, unsubscribe.CHOICE_CHANNEL, (), self.tick()
        )
        assert stopped == ["email"], stopped

    # -- campaigns ---------------------------------------------------------------------

    def launch(self, channel: str) -> int:
        """Create and launch a campaign (what `campaign create` and `campaign launch` do)."""
        now = self.tick()
        with self.engine.begin() as conn:
            camp = campaign_mod.create(
                conn, name=f"{channel} kampanje", channel=channel, purpose="alarm",
                template_text=TEMPLATES[channel], organisation_name=ORG_NAME,
                sender=campaign_mod.Sender(from_name=ORG_NAME, caller_id="22334455"), now=now,
            )  # fmt: skip
        with self.engine.begin() as conn:  # its own transaction: the launch reads ahead
            launch_mod.launch(conn, self.hasher, POLICY, camp.id, now=self.tick())
        return camp.id

    def launch_all(self, channels: Iterable[str] = ("email", "sms")) -> dict[str, int]:
        return {channel: self.launch(channel) for channel in channels}

    def send(self, campaign_id: int) -> int:
        """Send every batch as the worker does (campaigns.sending.Sender, the outbox)."""
        sender = Sender(
            self.engine, self.hasher, POLICY,
            lambda camp: OutboxChannel(self.outbox, camp.channel), PUBLIC_URL, now=self.clock,
        )  # fmt: skip
        with self.engine.connect() as conn:
            numbers = launch_mod.batches_to_enqueue(conn, campaign_id)
        for number in numbers:
            result = sender.send_batch(campaign_id, number)
            assert not result.skipped, result
        return campaign_id

    # -- what the store says -----------------------------------------------------------

    def owners(self) -> dict[int, int]:
        """contact id -> person, by the contact's digests under either key."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(contacts.c.id, contacts.c.email_hash, contacts.c.phone_hash))
            found = {}
            for row in rows:
                for digest in (row.email_hash, row.phone_hash):
                    if digest is not None and bytes(digest) in OWNERS:
                        found[int(row.id)] = OWNERS[bytes(digest)]
        return found

    def _per_person(self, campaigns: Mapping[str, int], columns: tuple[Any, Any]) -> Outcomes:
        owners = self.owners()
        found: dict[int, dict[str, list[tuple[str, str | None]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        with self.engine.connect() as conn:
            for channel, campaign_id in campaigns.items():
                rows = conn.execute(
                    select(recipients.c.contact_id, *columns).where(
                        recipients.c.campaign_id == campaign_id
                    )
                )
                for contact_id, first, second in rows:
                    found[owners.get(int(contact_id), -int(contact_id))][channel].append(
                        (first, second)
                    )
        return {n: {c: sorted(v, key=repr) for c, v in by.items()} for n, by in found.items()}

    def decisions(self, campaigns: Mapping[str, int]) -> Outcomes:
        """Per person and campaign channel: what the launch decided, a row per recipient
        (a person stored twice shows twice)."""
        return self._per_person(campaigns, (recipients.c.decision, recipients.c.rule))

    def send_outcomes(self, campaigns: Mapping[str, int]) -> Outcomes:
        """Per person and campaign channel: the recipient's state and the send-time rule."""
        return self._per_person(campaigns, (recipients.c.state, recipients.c.send_rule))

    def count(self, table: Any) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    def key_counts(self) -> dict[str, dict[str, int]]:
        """Rows per key id per table, counted here (what `keys status` must report)."""
        found: dict[str, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for table in KEYED_TABLES:
                rows = conn.execute(
                    select(table.c.key_id, func.count())
                    .where(table.c.key_id.is_not(None))
                    .group_by(table.c.key_id)
                )
                found[table.name] = {str(k): int(n) for k, n in rows}
        return found

    def dump(self) -> dict[str, list[str]]:
        """Every row of the data tables, to compare two moments."""
        with self.engine.connect() as conn:
            return {
                t.name: sorted(repr(tuple(r)) for r in conn.execute(select(t))) for t in DATA_TABLES
            }


def expect(
    table: Mapping[int, Iterable[tuple[str, str | None]]], channels: Iterable[str]
) -> Outcomes:
    """{person: (one outcome per channel)} as Outcomes: one recipient row each."""
    names = tuple(channels)
    return {
        n: {c: [o] for c, o in zip(names, outcomes, strict=True)} for n, outcomes in table.items()
    }


@pytest.fixture(params=[False, True], ids=["without_rotation", "with_rotation"])
def world(request: pytest.FixtureRequest, store_url: str, engine: Engine, tmp_path: Path) -> World:
    """The store of the scenario, rotated or not where the scenario says `rotate()`."""
    return World(store_url, engine, tmp_path / "world", rotates=request.param)


@pytest.fixture
def rotated(store_url: str, engine: Engine, tmp_path: Path) -> World:
    return World(store_url, engine, tmp_path / "world")


@pytest.fixture
def twin_store(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """A second, empty store (SQLite) for a world of its own."""
    path = tmp_path / "twin.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    engine = db.engine_for(url)
    yield url, engine
    engine.dispose()


# --- 1. A partner file after a rotation ---------------------------------------------------


def test_a_partner_file_of_known_people_imported_after_a_rotation_adds_no_contacts(
    world: World,
) -> None:
    first = world.json(
        "leads",
        "import",
        str(world.partner_file(range(1, 5), "first")),
        "--partner",
        "boligpartner",
    )
    assert first["new_contacts"] == 4
    world.rotate()
    again = world.json(
        "leads", "import", str(world.partner_file(range(1, 6), "next")), "--partner", "boligpartner"
    )
    assert (again["status"], again["new_contacts"], again["merged"]) == ("imported", 1, 4)
    assert world.count(contacts) == 5
    for n in range(1, 5):
        held = world.json("explain", "--email", email(n))
        assert sorted(s["source_ref"] for s in held["sources"]) == [f"first-{n}", f"next-{n}"]
        assert len(held["consents"]) == 2, n


# --- 2 and 3. A no before or after a rotation, at launch and at send time --------------------

# Person 1 opted out of email by letter, 2 by the link in an email, 3 sent STOPP by SMS,
# 4 was erased, 5 objected to everything by phone; 6 said nothing.
AT_LAUNCH = expect(
    {
        1: (OPTED_OUT, BY_CONSENT),
        2: (OPTED_OUT, BY_CONSENT),
        3: (BY_CONSENT, OPTED_OUT),
        4: (OBJECTED, OBJECTED),
        5: (OBJECTED, OBJECTED),
        6: (BY_CONSENT, BY_CONSENT),
    },
    ("email", "sms"),
)
AT_SEND = expect(
    {
        1: (STOPPED_OPT_OUT, SENT),
        2: (STOPPED_OPT_OUT, SENT),
        3: (SENT, STOPPED_OPT_OUT),
        4: (STOPPED_OBJECTION, STOPPED_OBJECTION),
        5: (STOPPED_OBJECTION, STOPPED_OBJECTION),
        6: (SENT, SENT),
    },
    ("email", "sms"),
)


def known_and_mailed(world: World) -> int:
    """People 1-6 from a partner file, each sent an email (with its unsubscribe link)."""
    world.import_people(PEOPLE)
    return world.send(world.launch("email"))


def say_no(world: World, mailed: int) -> None:
    world.suppress_email(1)
    world.click_unsubscribe(world.link(mailed, 2))
    world.sms_stop(3)
    world.forget(4)
    world.object_by_phone(5)


def test_a_no_made_before_a_rotation_still_stops_the_launch(world: World) -> None:
    say_no(world, known_and_mailed(world))
    world.rotate()
    world.import_people(PEOPLE, tag="next")  # the partner's next file: the same people
    assert world.decisions(world.launch_all()) == AT_LAUNCH


def test_a_no_made_before_a_rotation_still_stops_the_send(world: World) -> None:
    mailed = known_and_mailed(world)
    campaigns = world.launch_all()  # everyone queued
    say_no(world, mailed)
    world.rotate()
    for campaign_id in campaigns.values():
        world.send(campaign_id)
    assert world.send_outcomes(campaigns) == AT_SEND


def test_people_known_before_a_rotation_are_each_one_recipient_of_a_campaign_after_it(
    world: World,
) -> None:
    world.import_people(PEOPLE)
    world.rotate()
    world.import_people(PEOPLE, tag="next")
    campaign_id = world.send(world.launch("email"))
    assert world.count(contacts) == len(PEOPLE)
    assert world.decisions({"email": campaign_id}) == {n: {"email": [BY_CONSENT]} for n in PEOPLE}
    sent_to = [m["to"] for m in OutboxChannel(world.outbox, "email").messages(campaign_id)]
    assert sorted(sent_to) == sorted(email(n) for n in PEOPLE)


def test_a_no_made_after_a_rotation_stops_a_contact_stored_under_the_old_key_at_launch(
    world: World,
) -> None:
    mailed = known_and_mailed(world)
    world.rotate()
    say_no(world, mailed)
    assert world.decisions(world.launch_all()) == AT_LAUNCH


def test_a_no_made_after_a_rotation_stops_a_contact_stored_under_the_old_key_at_send_time(
    world: World,
) -> None:
    mailed = known_and_mailed(world)
    world.rotate()
    campaigns = world.launch_all()  # everyone queued
    say_no(world, mailed)
    for campaign_id in campaigns.values():
        world.send(campaign_id)
    assert world.send_outcomes(campaigns) == AT_SEND


# --- 4. The register across a rotation (TP-1) -------------------------------------------


def test_a_register_snapshot_loaded_after_a_rotation_excludes_contacts_imported_before_it(
    world: World,
) -> None:
    world.import_people(PEOPLE)
    world.rotate()
    world.load_register(listed=[2, 5])
    decided = world.decisions({"call": world.launch("call")})
    assert decided == {n: {"call": [LISTED if n in (2, 5) else NOT_LISTED]} for n in PEOPLE}


def test_a_register_snapshot_loaded_before_a_rotation_excludes_contacts_imported_after_it(
    world: World,
) -> None:
    world.import_people([1, 2, 3])
    world.load_register(listed=[2, 5, 6])
    world.rotate()
    world.import_people([4, 5, 6], tag="later")
    decided = world.decisions({"call": world.launch("call")})
    assert decided == {n: {"call": [LISTED if n in (2, 5, 6) else NOT_LISTED]} for n in PEOPLE}


# --- Everything at once; 5. explain agrees with the launch -----------------------------------


def eventful_history(world: World) -> None:
    """Before the rotation: a partner file (1-6), an email to everyone, an email opt-out
    by letter (1), an erasure (4), a register snapshot listing 2 and 6. The rotation.
    After it: STOPP by SMS (3), an objection by phone (5), a click on the link of the
    earlier email (2), and the partner's next file (1-7: 7 is new)."""
    mailed = known_and_mailed(world)
    world.suppress_email(1)
    world.forget(4)
    world.load_register(listed=[2, 6])
    world.rotate()
    world.sms_stop(3)
    world.object_by_phone(5)
    world.click_unsubscribe(world.link(mailed, 2))
    world.import_people(range(1, 8), tag="next")


AFTER_HISTORY = expect(
    {
        1: (OPTED_OUT, BY_CONSENT, NOT_LISTED),
        2: (OPTED_OUT, BY_CONSENT, LISTED),
        3: (BY_CONSENT, OPTED_OUT, NOT_LISTED),
        4: (OBJECTED, OBJECTED, OBJECTED),
        5: (OBJECTED, OBJECTED, OBJECTED),
        6: (BY_CONSENT, BY_CONSENT, LISTED),
        7: (BY_CONSENT, BY_CONSENT, NOT_LISTED),
    },
    CHANNELS,
)


def test_after_a_rotation_every_decision_equals_the_one_without_it(world: World) -> None:
    eventful_history(world)
    assert world.decisions(world.launch_all(CHANNELS)) == AFTER_HISTORY
    assert world.count(contacts) == 7


def test_explain_agrees_with_what_the_launch_decided_for_each_person(world: World) -> None:
    eventful_history(world)
    campaigns = world.launch_all(CHANNELS)
    owners = world.owners()
    launched: dict[tuple[int, str], list[tuple[Any, ...]]] = defaultdict(list)
    with world.engine.connect() as conn:
        for channel, campaign_id in campaigns.items():
            for row in conn.execute(
                select(recipients).where(recipients.c.campaign_id == campaign_id)
            ):
                ledger = sorted(e for e in row.evidence.split() if e.startswith("ledger:"))
                launched[(owners[int(row.contact_id)], channel)].append(
                    (row.decision, row.rule, row.basis, ledger)
                )
    explained: dict[tuple[int, str], list[tuple[Any, ...]]] = {}
    for n in range(1, 8):
        decisions = world.json("explain", "--email", email(n))["decisions"]
        for channel in CHANNELS:
            d = decisions[channel]
            ledger = sorted(e for e in d["evidence"] if e.startswith("ledger:"))
            explained[(n, channel)] = [(d["decision"], d["rule"], d["basis"], ledger)]
    assert dict(launched) == explained


# --- 6. outreach keys ---------------------------------------------------------------------


def test_after_keys_rekey_every_decision_is_the_same_and_contacts_are_under_the_new_key(
    rotated: World,
) -> None:
    eventful_history(rotated)
    before = rotated.decisions(rotated.launch_all(CHANNELS))
    status = rotated.ok(*KEYS_STATUS)
    assert OLD_ID in status.stdout and NEW_ID in status.stdout
    counted = rotated.key_counts()
    reported = rows_per_key(json.loads(status.stdout))
    assert {t: reported.get(t, {}) for t in counted} == counted

    rotated.ok(*KEYS_REKEY)
    after = rotated.decisions(rotated.launch_all(CHANNELS))
    assert after == AFTER_HISTORY
    assert before == after
    with rotated.engine.connect() as conn:
        held = conn.execute(
            select(contacts.c.key_id, contacts.c.email, contacts.c.email_hash, contacts.c.phone)
        ).all()
    plain = [row for row in held if row.email is not None]  # all but the erased person 4
    assert len(plain) == 6
    new = Hasher(NEW.encode())
    assert {row.key_id for row in plain} == {NEW_ID}
    assert all(bytes(row.email_hash) == new.digest("email", row.email) for row in plain)
    counted = rotated.key_counts()
    reported = rows_per_key(rotated.json(*KEYS_STATUS[:-1]))
    assert {t: reported.get(t, {}) for t in counted} == counted

    settled = rotated.dump()
    rotated.ok(*KEYS_REKEY)  # again: nothing left to do
    assert rotated.dump() == settled
    assert rotated.decisions(rotated.launch_all(CHANNELS)) == AFTER_HISTORY


def test_retiring_the_old_key_is_refused_while_an_erased_persons_no_exists_only_under_it(
    rotated: World,
) -> None:
    rotated.import_people([1, 2])
    rotated.forget(1)
    rotated.rotate()
    rotated.ok(*KEYS_REKEY)
    refused = rotated.cli(*keys_retire(OLD_ID))
    assert refused.exit_code != 0, refused.output
    said = " ".join(refused.output.split()).lower()
    assert OLD_ID in said and "ledger" in said, said
    # The key was not retired: the erased person's no still stands under it.
    assert rotated.cli("suppress", "check", "--email", email(1)).exit_code == 1


def history_left_under_the_old_key(world: World) -> int:
    """eventful_history without the partner's next file: every no of it made, and the
    contacts 1-6 still under the old key (the erased person 4 for good). Returns the
    contacts a rekey has to move."""
    mailed = known_and_mailed(world)
    world.suppress_email(1)
    world.forget(4)
    world.load_register(listed=[2, 6])
    world.rotate()
    world.sms_stop(3)
    world.object_by_phone(5)
    world.click_unsubscribe(world.link(mailed, 2))
    return 5


class Killed(Exception):
    """The rekey process killed after its first chunk committed."""


def test_a_rekey_killed_after_a_chunk_continues_where_it_stopped_and_then_changes_nothing(
    rotated: World,
) -> None:
    todo = history_left_under_the_old_key(rotated)

    def kill(_read: int) -> None:
        raise Killed

    with pytest.raises(Killed):
        rekey_all(rotated.engine, rotated.hasher, rotated.tick, batch=2, progress=kill)
    moved = rotated.key_counts()["contacts"].get(NEW_ID, 0)
    assert 0 < moved < todo  # the first chunk stays done
    done = rekey_all(rotated.engine, rotated.hasher, rotated.tick, batch=2)
    assert done.contacts == todo - moved and done.kept == 1 and not done.conflicts
    assert rotated.key_counts()["contacts"] == {NEW_ID: todo, OLD_ID: 1}
    settled = rotated.dump()
    again = rekey_all(rotated.engine, rotated.hasher, rotated.tick, batch=2)
    assert (again.contacts, again.copied.ledger_entries, again.kept) == (0, 0, 1)
    assert rotated.dump() == settled
    # Every no made before the rotation was copied once, and still decides.
    rotated.import_people(range(1, 8), tag="next")
    assert rotated.decisions(rotated.launch_all(CHANNELS)) == AFTER_HISTORY
    assert rotated.count(contacts) == 7


def test_a_person_stored_under_both_keys_is_left_out_of_the_rekey_and_reported(
    rotated: World,
) -> None:
    rotated.import_people([1, 2])
    rotated.suppress_email(1)
    with rotated.engine.connect() as conn:
        (old_contact,) = conn.execute(
            select(contacts.c.id).where(contacts.c.email == email(1))
        ).scalars()
    # An import run with the new key alone (no previous key configured): person 1 is
    # stored a second time, under the new key, beside the contact under the old one.
    result = import_lead_file(
        rotated.engine, Hasher(NEW.encode()), POLICY, "partner:boligpartner", LeadFormat(),
        rotated.partner_file([1], "twice"), now=rotated.tick(),
    )  # fmt: skip
    assert result.status == "imported", result
    with rotated.engine.connect() as conn:
        (twin,) = conn.execute(select(contacts.c.id).where(contacts.c.key_id == NEW_ID)).scalars()
    rotated.rotate()

    done = rotated.json(*KEYS_REKEY[:-1])
    assert done["conflicts"] == [[old_contact, twin]]
    assert done["contacts_rekeyed"] == 1  # person 2
    assert done["ledger_entries_copied"] == 0  # person 1's no stays under the old key
    with rotated.engine.connect() as conn:
        held = {int(i): str(k) for i, k in conn.execute(select(contacts.c.id, contacts.c.key_id))}
    assert held[old_contact] == OLD_ID and held[twin] == NEW_ID
    said = " ".join(rotated.ok(*KEYS_REKEY[:-1]).output.split())
    assert f"contact {old_contact} is the same person as contact {twin}" in said


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_contact_an_import_rekeys_while_a_chunk_is_under_way_is_left_to_the_import(
    rotated: World,
) -> None:
    """PostgreSQL (SQLite has one writer: the chunk and the import never overlap). The
    chunk reads without locking; the import holds contact 1, re-keyed and not yet
    committed; the chunk's UPDATE waits for it, re-checks it and leaves it out: one copy
    of person 1's no, made by the import, and no error."""
    rotated.import_people([1, 2, 3])
    rotated.suppress_email(1)
    rotated.rotate()
    with rotated.engine.connect() as conn:
        row = conn.execute(select(contacts).where(contacts.c.email == email(1))).one()
    hasher = rotated.hasher
    incoming = SimpleNamespace(
        email=row.email, email_hash=hasher.digest("email", row.email),
        phone=row.phone, phone_hash=hasher.digest("phone", row.phone),
        first_name=row.first_name, last_name=row.last_name, street=row.street,
        postal_code=row.postal_code, name_address_hash=None,
    )  # fmt: skip
    done: list[Rekeyed] = []
    with rotated.engine.connect() as importing:
        with importing.begin():
            rotation = Rotation(importing, hasher, rotated.tick())
            assert rotation.before_lookup([incoming])  # contact 1 moved, its row locked
            chunk = threading.Thread(
                target=lambda: done.append(rekey_all(rotated.engine, hasher, rotated.tick))
            )
            chunk.start()
            assert _waits_for_a_lock(rotated.engine), "the chunk never reached contact 1"
        chunk.join(timeout=60)
    (rekeyed,) = done
    assert rekeyed.contacts == 2 and not rekeyed.conflicts
    assert rotated.key_counts()["contacts"] == {NEW_ID: 3}
    with rotated.engine.connect() as conn:
        copies = conn.execute(
            select(func.count())
            .select_from(ledger_entries)
            .where(ledger_entries.c.key_hash == hasher.digest("email", email(1)))
        ).scalar_one()
    assert copies == 1


def _waits_for_a_lock(engine: Engine) -> bool:
    """Whether another session of this database waits for a row lock (polled: up to 30 s)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    for _ in range(600):
        with engine.connect() as conn:
            if conn.execute(query).scalar_one():
                return True
        threading.Event().wait(0.05)
    return False


# --- 7. Strict settings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "previous",
    [f"{THIRD}, {OLD}", f" {OLD} ", f"{OLD} ,{THIRD}"],
    ids=["space_after_the_comma", "spaces_around", "space_before_the_comma"],
)
def test_previous_keys_are_trimmed_so_a_no_under_the_old_key_still_matches(
    rotated: World, previous: str
) -> None:
    rotated.suppress_email(1)
    rotated.env = {"OUTREACH_SECRET_KEY": NEW, "OUTREACH_PREVIOUS_SECRET_KEYS": previous}
    checked = rotated.cli("suppress", "check", "--email", email(1))
    assert checked.exit_code == 1, checked.output  # 1: suppressed


@pytest.mark.parametrize(
    "previous",
    ["too-short-key", f"{OLD},{OLD}", f"{OLD}, {OLD} ", NEW, f"{OLD},{NEW}"],
    ids=[
        "shorter_than_16_bytes",
        "a_duplicate",
        "a_duplicate_once_trimmed",
        "the_current_key",
        "the_current_key_among_them",
    ],
)
def test_a_previous_key_that_is_short_a_duplicate_or_the_current_key_is_refused(
    rotated: World, previous: str
) -> None:
    rotated.env = {"OUTREACH_SECRET_KEY": NEW, "OUTREACH_PREVIOUS_SECRET_KEYS": previous}
    refused = rotated.cli("explain", "--email", email(1), "--json")
    assert refused.exit_code != 0, refused.output
    assert "OUTREACH_PREVIOUS_SECRET_KEYS" in " ".join(refused.output.split())


def _write_under_the_old_key(world: World, table: str) -> None:
    # Through the CLI, as an operator writes: its Context records the key it writes under.
    if table == "ledger_entries":
        world.suppress_email(1)
    else:
        path = world.partner_file([1], "first")
        world.ok("leads", "import", str(path), "--partner", "boligpartner")


@pytest.mark.parametrize("table", ["ledger_entries", "contacts"])
@pytest.mark.parametrize(
    "command",
    [("explain", "--email", "kari@example.com", "--json"),
     ("suppress", "add", "--email", "kari@example.com", "--reason", "unsubscribe")],
    ids=["explain", "suppress_add"],
)  # fmt: skip
def test_a_store_holding_digests_under_a_key_no_configured_key_has_is_refused_naming_both(
    rotated: World, table: str, command: tuple[str, ...]
) -> None:
    _write_under_the_old_key(rotated, table)
    entries = rotated.count(ledger_entries)
    rotated.env = {"OUTREACH_SECRET_KEY": NEW, "OUTREACH_PREVIOUS_SECRET_KEYS": None}
    refused = rotated.cli(*command)
    assert refused.exit_code != 0, refused.output
    said = " ".join(refused.output.split())
    assert OLD_ID in said and table in said, said
    assert rotated.count(ledger_entries) == entries  # nothing written under the wrong keys
    rotated.env["OUTREACH_PREVIOUS_SECRET_KEYS"] = OLD
    rotated.ok(*command)


# --- 8. A Mailchimp event keeps no unkeyed hash of the address --------------------------------


def _unkeyed(fired_at: str, address: str) -> list[str]:
    """The SHA-256 of the event's fields as suppression.ledger.event_id makes it, for the
    address as Mailchimp spelt it and in its canonical spelling."""
    return [
        hashlib.sha256(
            "\x00".join(("unsubscribe", fired_at, spelt, MAILCHIMP_LIST)).encode()
        ).hexdigest()
        for spelt in (address, email_identity(address).value)
    ]


def _mailchimp_rows(world: World) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with world.engine.connect() as conn:
        ledger = [
            dict(r._mapping)
            for r in conn.execute(
                select(ledger_entries).where(ledger_entries.c.source == "mailchimp")
            )
        ]
        events = [
            dict(r._mapping)
            for r in conn.execute(
                select(inbound_events).where(inbound_events.c.provider == "mailchimp")
            )
        ]
    return ledger, events


def test_a_mailchimp_events_stored_ids_are_keyed_not_an_unkeyed_hash_of_the_address(
    store_url: str, engine: Engine, tmp_path: Path, twin_store: tuple[str, Engine]
) -> None:
    address = "Lead1@Example.no"
    # Mailchimp's fired_at: UTC, "YYYY-MM-DD HH:MM:SS", a few minutes before it arrives.
    fired_at = (START - timedelta(minutes=5)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    here = World(store_url, engine, tmp_path / "here", rotates=False)
    other = World(*twin_store, tmp_path / "other", rotates=False, secret=NEW)
    stored: list[set[str]] = []
    for world in (here, other):
        world.import_people([1])
        world.mailchimp_unsubscribe(address, fired_at)
        world.forget(1)
        assert world.cli("suppress", "check", "--email", email(1)).exit_code == 1  # kept
        ledger, events = _mailchimp_rows(world)
        assert len(ledger) >= 1 and len(events) == 1
        unkeyed = _unkeyed(fired_at, address)
        for row in [*ledger, *events]:
            for column, value in row.items():
                text = value.hex() if isinstance(value, bytes | memoryview) else str(value)
                for digest in unkeyed:
                    assert digest[:16] not in text, (column, text)
        stored.append({r["source_event"] for r in ledger} | {events[0]["provider_event_id"]})
    # Keyed: under another secret the same event is stored under other ids.
    assert not stored[0] & stored[1], stored
