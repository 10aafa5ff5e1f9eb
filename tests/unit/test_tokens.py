"""Unsubscribe token encoding: short, unforgeable, strict. No I/O (the store part is in
tests/integration/test_tokens.py)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suppression.keys import Hasher
from suppression.tokens import (
    Installation,
    Signer,
    decode,
    decode_ref,
    encode,
    encode_recipient,
)

HERE = Installation(b"installation-one", legacy_token_max=100, legacy_recipient_max=1000)
HASHER = Signer(Hasher(b"unit-test-secret-0123456789abcdef"), HERE)
OTHER = Signer(Hasher(b"someone-elses-secret-0123456789ab"), HERE)


@given(st.integers(min_value=0, max_value=2**40))
def test_a_token_decodes_to_the_id_it_was_issued_for(token_id: int) -> None:
    assert decode(HASHER, encode(HASHER, token_id)) == token_id


@pytest.mark.parametrize("token_id", [1, 255, 256, 2**32, 2**40 - 1, 2**40])
def test_a_token_for_ids_up_to_2_40_is_at_most_24_characters(token_id: int) -> None:
    token = encode(HASHER, token_id)
    assert len(token) <= 24
    assert token.isascii() and "=" not in token


def test_a_token_signed_with_another_key_is_refused() -> None:
    assert decode(HASHER, encode(OTHER, 42)) is None


def test_a_token_issued_before_a_key_rotation_still_decodes() -> None:
    keys = Hasher(b"the-new-secret-key-0123456789abcd", previous=[HASHER.hasher.secret])
    rotated = Signer(keys, HERE)
    assert decode(rotated, encode(HASHER, 42)) == 42
    assert decode(rotated, encode(rotated, 43)) == 43


def test_a_token_of_another_installation_under_the_same_key_is_refused() -> None:
    """A second database (same key, its own ids) signs its own installation id: its
    links never act here, where the same id names someone else."""
    there = Signer(HASHER.hasher, Installation(b"installation-two"))
    assert decode(there, encode(there, 42)) == 42
    assert decode(HASHER, encode(there, 42)) is None
    assert decode_ref(HASHER, encode_recipient(there, 42)) is None


def _unbound(signer: Signer, purpose: str, flag: int, value: int) -> str:
    """A token as issued before tokens signed the installation (before migration 0009)."""
    body = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    mac = signer.hasher.sign(purpose, body)[:10]
    return _token(bytes([len(body) | flag]) + body + mac)


def test_a_token_issued_before_the_binding_works_for_the_ids_issued_then() -> None:
    old_row = _unbound(HASHER, "unsubscribe-token", 0, 100)
    old_recipient = _unbound(HASHER, "recipient-unsubscribe-token", 0x80, 1000)
    assert decode(HASHER, old_row) == 100
    found = decode_ref(HASHER, old_recipient)
    assert found is not None and (found.kind, found.id) == ("recipient", 1000)


def test_an_unbound_token_above_the_ids_issued_before_the_binding_is_refused() -> None:
    assert decode(HASHER, _unbound(HASHER, "unsubscribe-token", 0, 101)) is None
    assert decode_ref(HASHER, _unbound(HASHER, "recipient-unsubscribe-token", 0x80, 1001)) is None


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_a_token_with_a_flipped_mac_bit_is_refused() -> None:
    raw = bytearray(_raw(encode(HASHER, 42)))
    raw[-1] ^= 1
    assert decode(HASHER, _token(bytes(raw))) is None


def test_a_token_pointing_at_another_id_with_the_old_mac_is_refused() -> None:
    raw = bytearray(_raw(encode(HASHER, 42)))
    raw[1] = 43
    assert decode(HASHER, _token(bytes(raw))) is None


@pytest.mark.parametrize("cut", [1, 2, 3, 4, 8, 15, 18])
def test_a_truncated_token_is_refused(cut: int) -> None:
    token = encode(HASHER, 123456)
    assert len(token) == 19
    assert decode(HASHER, token[:-cut]) is None


def test_a_token_with_extra_characters_is_refused() -> None:
    token = encode(HASHER, 123456)
    assert decode(HASHER, token + "A") is None
    assert decode(HASHER, token + "AAAA") is None
    assert decode(HASHER, " " + token) is None
    assert decode(HASHER, token[:5] + "!" + token[5:]) is None


def test_only_the_url_safe_spelling_is_a_token() -> None:
    token = next(encode(HASHER, i) for i in range(1000) if "-" in encode(HASHER, i))
    assert decode(HASHER, token) is not None
    assert decode(HASHER, token.replace("-", "+")) is None


@given(st.text(max_size=80))
def test_garbage_is_refused_without_raising(garbage: str) -> None:
    assert decode(HASHER, garbage) is None


@given(st.binary(max_size=40))
def test_random_bytes_in_token_form_are_refused(raw: bytes) -> None:
    assert decode(HASHER, _token(raw)) is None
