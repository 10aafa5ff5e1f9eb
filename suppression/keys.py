"""Keyed hashes of identities: HMAC-SHA256 under the secret key (GD-4, ALL-4).

The key id stored beside each hash says which key made it, so that the key can be
rotated later: a new key hashes new entries while the old ones are still matched
under the key that made them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from suppression.errors import ConfigurationError
from suppression.identity import Identity

HASH_BYTES = 32


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
        if len(secret) < 16:
            raise ConfigurationError("OUTREACH_SECRET_KEY", "must be at least 16 bytes")
        self.secret = secret
        self.key_id = key_id_for(secret)
        self._keys: Mapping[str, bytes] = {
            self.key_id: secret,
            **{key_id_for(old): old for old in previous},
        }

    def digest(self, kind: str, value: str, key_id: str | None = None) -> bytes:
        """HMAC of `kind:value`; the kind keeps an email and a phone from ever colliding."""
        key = self._keys[key_id or self.key_id]
        return hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).digest()

    def hash(self, ident: Identity) -> KeyedHash:
        return KeyedHash(self.key_id, self.digest(ident.kind, ident.value))

    def all_digests(self, kind: str, value: str) -> list[bytes]:
        """The digest under every known key, to match entries made before a rotation."""
        return [self.digest(kind, value, key_id) for key_id in self._keys]

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
