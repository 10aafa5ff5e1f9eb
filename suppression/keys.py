"""Keyed hashes of identities: HMAC-SHA256 under the secret key (GD-4, ALL-4).

The key id stored beside each hash says which key made it, so that the key can be
rotated: a new key hashes new entries while the old ones are still matched under the
key that made them. `Hasher` is the one owner of "which digests stand for this
identity" (`keyed_all`): no path computes a digest under one key when it matches.

How a rotation keeps every "no" (docs/operations.md, "Rotating the secret key"):
- what is written from a plaintext identity (a ledger entry, a register entry) is
  written under every configured key, so that it matches a contact under any of them;
- a contact is kept under one key (its `key_id`); an import that finds it under an
  older key re-keys it (campaigns.rekeying), and what matched it under the older key
  is copied under the new one (suppression.rotation);
- `outreach keys rekey` does the same for every contact the store still holds in
  plaintext. What only a hash is left of (an erased person's ledger entries) stays
  under the key that made it, and that key stays configured.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from suppression.errors import ConfigurationError
from suppression.identity import Identity

HASH_BYTES = 32
MIN_KEY_BYTES = 16
PREVIOUS_SETTING = "OUTREACH_PREVIOUS_SECRET_KEYS"


def key_id_for(secret: bytes) -> str:
    """A short public name for a secret; reveals nothing usable about it."""
    return hashlib.sha256(b"outreach key id\x00" + secret).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class KeyedHash:
    key_id: str
    digest: bytes


class Hasher:
    """Hashes canonical identities under the current key; knows older keys for matching."""

    def __init__(self, secret: bytes, previous: Iterable[bytes] = ()) -> None:
        if len(secret) < MIN_KEY_BYTES:
            raise ConfigurationError("OUTREACH_SECRET_KEY", "must be at least 16 bytes")
        self.secret = secret
        self.key_id = key_id_for(secret)
        keys: dict[str, bytes] = {self.key_id: secret}
        for n, old in enumerate(previous, start=1):
            if len(old) < MIN_KEY_BYTES:
                raise ConfigurationError(
                    PREVIOUS_SETTING, f"key {n} is shorter than {MIN_KEY_BYTES} bytes"
                )
            if old == secret:
                raise ConfigurationError(
                    PREVIOUS_SETTING, f"key {n} is the current OUTREACH_SECRET_KEY"
                )
            if key_id_for(old) in keys:
                raise ConfigurationError(PREVIOUS_SETTING, f"key {n} is given twice")
            keys[key_id_for(old)] = old
        self._keys: Mapping[str, bytes] = keys
        self.previous_key_ids: tuple[str, ...] = tuple(keys)[1:]

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every configured key id, the current one first."""
        return tuple(self._keys)

    def knows(self, key_id: str) -> bool:
        return key_id in self._keys

    def digest(self, kind: str, value: str, key_id: str | None = None) -> bytes:
        """HMAC of `kind:value`; the kind keeps an email and a phone from ever colliding."""
        key = self._keys[key_id or self.key_id]
        return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).digest()

    def hash(self, ident: Identity) -> KeyedHash:
        return KeyedHash(self.key_id, self.digest(ident.kind, ident.value))

    def all_digests(self, kind: str, value: str) -> list[bytes]:
        """The digest under every known key, to match entries made before a rotation."""
        return [self.digest(kind, value, key_id) for key_id in self._keys]

    def keyed_all(self, kind: str, value: str) -> tuple[KeyedHash, ...]:
        """The identity's digest under every configured key, the current one first: what
        a write from a plaintext identity stores, and what a match looks for."""
        return tuple(KeyedHash(key_id, self.digest(kind, value, key_id)) for key_id in self._keys)

    def hash_all(self, ident: Identity) -> tuple[KeyedHash, ...]:
        return self.keyed_all(ident.kind, ident.value)

    def event_id(self, *parts: str) -> str:
        """A stable id for a provider event whose fields name a person (a Mailchimp
        event carries the email): keyed, so that it reveals nothing after an erasure,
        where a plain hash could be matched by hashing guesses."""
        return self.sign("event", "\x00".join(parts).encode()).hex()[:40]

    def sign(self, purpose: str, payload: bytes, key_id: str | None = None) -> bytes:
        """A MAC for tokens and references, domain-separated from identity hashes."""
        key = self._keys[key_id or self.key_id]
        return hmac.new(key, purpose.encode() + b"\x00" + payload, hashlib.sha256).digest()

    def verify(self, purpose: str, payload: bytes, mac: bytes) -> bool:
        """Whether `mac` (possibly truncated) signs `payload` under any known key, so that
        what was signed before a key rotation still verifies."""
        return bool(mac) and any(
            hmac.compare_digest(mac, self.sign(purpose, payload, key_id)[: len(mac)])
            for key_id in self._keys
        )
