"""Unsubscribe tokens on both stores: issue and resolve, refuse forgeries, survive erasure."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import Engine, insert, text

from campaigns import people
from campaigns.schema import contacts
from suppression import tokens
from suppression.identity import email_identity
from suppression.keys import Hasher
from suppression.schema import unsubscribe_tokens
from tests.clock import UTC_NOW

pytestmark = pytest.mark.integration

OLA = email_identity("ola.nordmann@example.com")


def _issue(engine: Engine, hasher: Hasher, campaign_id: int | None = 7) -> str:
    with engine.begin() as conn:
        return tokens.issue(
            conn, hasher, hasher.hash(OLA), "email", "email", campaign_id, now=UTC_NOW
        )


def test_an_issued_token_resolves_to_its_hashed_identity(engine: Engine, hasher: Hasher) -> None:
    token = _issue(engine, hasher)
    with engine.connect() as conn:
        target = tokens.resolve(conn, hasher, token)
    assert target is not None
    assert target.key_hash == hasher.hash(OLA).digest
    assert (target.key_id, target.identity_kind, target.channel, target.campaign_id) == (
        hasher.key_id,
        "email",
        "email",
        7,
    )


def test_each_issue_is_a_new_token(engine: Engine, hasher: Hasher) -> None:
    first, second = _issue(engine, hasher), _issue(engine, hasher, None)
    assert first != second
    with engine.connect() as conn:
        resolved = tokens.resolve(conn, hasher, second)
    assert resolved is not None and resolved.campaign_id is None


def test_forged_truncated_and_garbage_tokens_resolve_to_nothing(
    engine: Engine, hasher: Hasher
) -> None:
    token = _issue(engine, hasher)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[-1] ^= 0x01
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with engine.connect() as conn:
        other_key = tokens.encode(
            tokens.signer(conn, Hasher(b"not-our-secret-key-0123456789abc")), 1
        )
        for bad in (
            forged,
            token[:-1],
            token[:10],
            other_key,
            "",
            "x" * 20,
            "🙂" * 6,
            token + "'--",
        ):
            assert tokens.resolve(conn, hasher, bad) is None, bad


def test_a_well_signed_token_for_no_row_resolves_to_nothing(engine: Engine, hasher: Hasher) -> None:
    with engine.connect() as conn:
        signed = tokens.encode(tokens.signer(conn, hasher), 999_999)
        assert tokens.resolve(conn, hasher, signed) is None


def test_tokens_stay_short_for_ids_beyond_2_40(engine: Engine, hasher: Hasher) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT setval('unsubscribe_tokens_id_seq', :v)"), {"v": 2**40 - 1})
        else:
            conn.execute(
                insert(unsubscribe_tokens).values(
                    id=2**40 - 1,
                    key_hash=b"\x00" * 32,
                    key_id="x",
                    identity_kind="email",
                    channel="email",
                    created_at=UTC_NOW,
                )
            )
    token = _issue(engine, hasher)
    assert len(token) <= 24
    with engine.connect() as conn:
        target = tokens.resolve(conn, hasher, token)
    assert target is not None and target.token_id == 2**40


def test_a_token_still_resolves_after_the_person_is_forgotten(
    engine: Engine, hasher: Hasher
) -> None:
    now = UTC_NOW
    with engine.begin() as conn:
        conn.execute(
            insert(contacts).values(
                email=OLA.value,
                email_hash=hasher.hash(OLA).digest,
                key_id=hasher.key_id,
                first_name="Ola",
                last_name="Nordmann",
                is_partner_lead=True,
                is_customer=False,
                created_at=now,
                updated_at=now,
            )
        )
    token = _issue(engine, hasher)
    with engine.begin() as conn:
        people.forget(conn, hasher, OLA, now=UTC_NOW, actor="test")
    with engine.connect() as conn:
        target = tokens.resolve(conn, hasher, token)
    assert target is not None
    assert target.key_hash == hasher.hash(OLA).digest
