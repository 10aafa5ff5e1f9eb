"""Keyed hashes at import speed: `Hasher.digest` under the current key, computed faster.

HMAC-SHA256(k, m) = SHA256((k ^ opad) || SHA256((k ^ ipad) || m)). `hmac.new` pays
for the two padded-key blocks on every call; here they are hashed once and their
states copied per call, which is a third of the cost for the short messages
identities are. The result is the same bytes (checked against `Hasher.digest` when
built, so the two can never silently diverge); the ledger and the register match it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from suppression.keys import Hasher

_BLOCK = 64  # SHA-256 block size


def current_digest(hasher: Hasher) -> Callable[[str, str], bytes]:
    """A function (kind, value) -> hasher.digest(kind, value) under the current key."""
    key = hasher.secret
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def digest(kind: str, value: str) -> bytes:
        i = inner.copy()
        i.update(f"{kind}:{value}".encode())
        o = outer.copy()
        o.update(i.digest())
        return o.digest()

    for kind, value in (("email", "probe@example.no"), ("phone", "+4741234567")):
        if digest(kind, value) != hasher.digest(kind, value):
            raise AssertionError("campaigns.hashing disagrees with Hasher.digest")
    return digest
