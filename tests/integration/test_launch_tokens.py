"""A launch writes one row per audience member: the recipient row is the target of the
unsubscribe token in their message (no token rows), and on PostgreSQL a launch reads on
a second connection while it streams its rows into one COPY; both ways decide alike."""

from __future__ import annotations

import base64
import gc
from datetime import UTC, timedelta

import pytest
from sqlalchemy import Engine, func, select, text

from campaigns import campaign as campaign_mod
from campaigns import launch as launch_mod
from campaigns import people, streaming
from campaigns import report as report_mod
from campaigns.campaign_schema import recipients
from campaigns.optouts import unsubscribe
from suppression import tokens
from suppression.identity import email_identity
from suppression.keys import Hasher
from suppression.ledger import Ledger
from suppression.policy import PolicyConfig
from suppression.schema import unsubscribe_tokens
from tests.clock import working_morning
from tests.conftest import ORG_NAME
from tests.factories import add_person
from worker import db

pytestmark = [pytest.mark.integration, pytest.mark.travel]

TEMPLATE = "Hei fra {{ organisation.name }}. {{ source_notice }} Avmeld: {{ unsubscribe_url }}"
# The launch: a working-day morning (in UTC, as the worker's clock gives it).
LAUNCH = working_morning().astimezone(UTC)
RECIPIENT_COLUMNS = (
    recipients.c.contact_id, recipients.c.key_hash, recipients.c.key_id,
    recipients.c.decision, recipients.c.rule, recipients.c.basis, recipients.c.evidence,
    recipients.c.state, recipients.c.batch_no,
)  # fmt: skip


def _create(engine: Engine, channel: str = "email") -> int:
    with engine.begin() as conn:
        return campaign_mod.create(
            conn, name="Vinter", channel=channel, purpose="alarm", template_text=TEMPLATE,
            organisation_name=ORG_NAME, batch_size=3, now=LAUNCH,
        ).id  # fmt: skip


def _audience(engine: Engine, hasher: Hasher) -> None:
    """Ten people: six with email consent, one without any, one unsubscribed, one with an
    objection, one with consent naming another company."""
    with engine.begin() as conn:
        for n in range(6):
            add_person(conn, hasher, n)
        add_person(conn, hasher, 6, consent_channels=None)
        add_person(conn, hasher, 7)
        add_person(conn, hasher, 8)
        add_person(conn, hasher, 9, company_named="Et Annet Firma AS")
        ledger = Ledger(conn, hasher)
        for n, scope, reason in ((7, "email", "unsubscribe"), (8, "all", "objection")):
            ledger.add(
                hasher.hash(email_identity(f"ola{n}@example.com")), "email", scope=scope,
                reason=reason, source="web", source_event=f"test:{n}", now=LAUNCH,
            )  # fmt: skip


def _rows(engine: Engine, campaign_id: int) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(*RECIPIENT_COLUMNS)
                .where(recipients.c.campaign_id == campaign_id)
                .order_by(recipients.c.contact_id)
            )
        ]


def test_the_link_in_a_message_names_the_recipient_and_survives_erasure(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig
) -> None:
    """ES-4: every allowed recipient has a working link; ALL-4: it works after erasure."""
    _audience(engine, hasher)
    campaign_id = _create(engine)
    with engine.begin() as conn:
        summary = launch_mod.launch(conn, hasher, policy_config, campaign_id, now=LAUNCH)
        assert conn.execute(select(func.count()).select_from(unsubscribe_tokens)).scalar() == 0
    assert (summary.audience, summary.eligible) == (10, 6)
    rows = _rows(engine, campaign_id)
    allowed = [r for r in rows if r[3] == "send"]
    assert len(allowed) == 6 and all(r[2] == hasher.key_id for r in allowed)
    assert all(r[2] is None for r in rows if r[3] != "send")  # no token for the excluded
    with engine.connect() as conn:
        first = conn.execute(
            select(recipients.c.id, recipients.c.key_hash)
            .where(recipients.c.campaign_id == campaign_id, recipients.c.decision == "send")
            .order_by(recipients.c.id)
            .limit(1)
        ).one()
        token = tokens.for_recipient(tokens.signer(conn, hasher), int(first.id), None)
    assert len(token) <= 24
    with engine.begin() as conn:  # the person asks to be forgotten: the link still works
        people.forget(
            conn, hasher, email_identity("ola0@example.com"),
            now=LAUNCH + timedelta(hours=1), actor="test",
        )  # fmt: skip
    with engine.connect() as conn:
        target = unsubscribe.find(conn, hasher, token)
    assert target is not None
    assert (target.kind, target.token_id, target.campaign_id) == (
        "recipient",
        first.id,
        campaign_id,
    )
    assert (target.key_hash, target.key_id) == (bytes(first.key_hash), hasher.key_id)
    assert (target.channel, target.identity_kind) == ("email", "email")
    clicked = LAUNCH + timedelta(hours=2)
    assert unsubscribe.submit(engine, hasher, token, unsubscribe.CHOICE_CHANNEL, (), clicked) == [
        "email"
    ]
    with engine.connect() as conn:
        report = report_mod.build(conn, campaign_id)
    assert report.unsubscribed == 1


def test_recipient_tokens_cannot_be_forged_from_other_tokens(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig
) -> None:
    _audience(engine, hasher)
    campaign_id = _create(engine)
    with engine.begin() as conn:
        launch_mod.launch(conn, hasher, policy_config, campaign_id, now=LAUNCH)
    with engine.connect() as conn:
        ids = dict(
            conn.execute(
                select(recipients.c.decision, func.min(recipients.c.id))
                .where(recipients.c.campaign_id == campaign_id)
                .group_by(recipients.c.decision)
            ).all()
        )
    sent_to = int(ids["send"])
    with engine.connect() as conn:
        signer = tokens.signer(conn, hasher)
        other_key = tokens.Signer(Hasher(b"not-our-secret-key-0123456789abc"), signer.installation)
    # The MAC of a token row's token with the recipient flag set: a different purpose.
    raw = bytearray(base64.urlsafe_b64decode(tokens.encode(signer, sent_to) + "=="))
    raw[0] |= 0x80
    flagged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    excluded = tokens.encode_recipient(signer, int(ids["excluded:no_consent"]))
    forged = tokens.encode_recipient(other_key, sent_to)
    with engine.connect() as conn:
        assert unsubscribe.find(conn, hasher, tokens.encode_recipient(signer, sent_to))
        for bad in (flagged, excluded, forged, tokens.encode_recipient(signer, 10**9)):
            assert unsubscribe.find(conn, hasher, bad) is None, bad
    # A token row's token still names its row, whatever recipients exist.
    assert tokens.decode_ref(signer, tokens.encode(signer, sent_to)) == tokens.TokenRef(
        "token", sent_to
    )


def test_a_launch_decides_alike_reading_on_its_own_connection_or_the_callers(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig
) -> None:
    _audience(engine, hasher)
    first, second = _create(engine), _create(engine)
    with engine.begin() as conn:  # nothing written yet: reads on a connection of its own
        with streaming.reading_connection(conn) as reader:
            separate = reader is not conn
        launch_mod.launch(conn, hasher, policy_config, first, now=LAUNCH)
    with engine.begin() as conn:  # this transaction wrote: it must read its own writes
        conn.execute(text("UPDATE campaigns SET name = 'Vinter 2' WHERE id = :id"), {"id": second})
        with streaming.reading_connection(conn) as reader:
            assert reader is conn
        launch_mod.launch(conn, hasher, policy_config, second, now=LAUNCH)
    assert separate == (engine.dialect.name == "postgresql")
    assert _rows(engine, first) == _rows(engine, second)
    assert len(_rows(engine, first)) == 10


def test_a_failing_launch_writes_nothing_and_frees_its_reader(
    engine: Engine, hasher: Hasher, policy_config: PolicyConfig
) -> None:
    _audience(engine, hasher)
    campaign_id = _create(engine)
    broken = PolicyConfig(organisation_name=ORG_NAME, frequency_window_days=10**9)
    with pytest.raises(OverflowError) as failure, engine.begin() as conn:
        launch_mod.launch(conn, hasher, broken, campaign_id, now=LAUNCH)
    with engine.connect() as conn:
        assert campaign_mod.get(conn, campaign_id).state == campaign_mod.DRAFT
        # The failure's traceback is collected while another transaction runs on the
        # pooled connections (as the cyclic collector may do at any moment): nothing the
        # failed launch read with may touch them then.
        del failure
        gc.collect()
        count = select(func.count()).where(recipients.c.campaign_id == campaign_id)
        assert conn.execute(count).scalar() == 0
    with engine.begin() as conn:  # and it can be launched after all
        assert (
            launch_mod.launch(conn, hasher, policy_config, campaign_id, now=LAUNCH).audience == 10
        )


# The reader is a connection of its own on PostgreSQL only: SQLite is not collected.
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_the_launch_reader_reads_times_in_utc_and_decides_alike_in_any_server_zone(
    store_url: str, hasher: Hasher, policy_config: PolicyConfig
) -> None:
    """The reader asks for times in UTC (the policy's comparisons of a consent's time with
    the launch's cost a seventh or less then); the moments, and so the decisions at the edges of
    ES-1 (a consent given at the very moment of the launch, or a second after) and ES-5
    (a partner's consent exactly as old as the limit, or a second older), are the same
    whatever zone the server's sessions are in."""
    oldest = LAUNCH - timedelta(days=policy_config.partner_consent_max_age_days)
    edges = (LAUNCH, LAUNCH + timedelta(seconds=1), oldest, oldest - timedelta(seconds=1))
    decided = []
    for zone in ("Europe/Oslo", "UTC", "America/Los_Angeles"):
        engine = db.engine_for(store_url, connect_args={"options": f"-c TimeZone={zone}"})
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE contacts, recipients, campaigns RESTART IDENTITY CASCADE"))
            for n, given_at in enumerate(edges):
                add_person(conn, hasher, n, given_at=given_at)
        campaign_id = _create(engine)
        with engine.begin() as conn:
            with streaming.reading_connection(conn) as reader:
                given = reader.execute(text("SELECT min(given_at) FROM consent_records")).scalar()
                assert given is not None and given.tzinfo is UTC
            launch_mod.launch(conn, hasher, policy_config, campaign_id, now=LAUNCH)
            assert conn.execute(text("SHOW TimeZone")).scalar() == zone  # the caller's own
        decided.append([(r[3], r[4]) for r in _rows(engine, campaign_id)])
        engine.dispose()
    assert decided[0] == [
        ("send", "ES-1"),
        ("excluded:no_consent", "ES-1"),
        ("send", "ES-1"),
        ("excluded:consent_too_old", "ES-5"),
    ]
    assert decided[1] == decided[0] and decided[2] == decided[0]
