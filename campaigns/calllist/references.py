"""Call-list references: opaque to the call centre, unforgeable, and ours to resolve.

`K<campaign>-<16 base32 characters>`: the campaign id and a MAC of the recipient id
under the secret key, so the file carries no database id and no identity, and an
outcome row can only name a recipient we put on a list.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from typing import Final

from suppression.keys import Hasher

_PURPOSE: Final = "calllist-reference"
PATTERN: Final = re.compile(r"K(\d{1,18})-([A-Z2-7]{16})")


def reference(hasher: Hasher, campaign_id: int, recipient_id: int) -> str:
    """An opaque, unforgeable reference: the campaign id and a MAC of the recipient."""
    mac = hasher.sign(_PURPOSE, f"{campaign_id}:{recipient_id}".encode())[:10]
    return f"K{campaign_id}-{base64.b32encode(mac).decode()}"


def resolve(hasher: Hasher, ref: str, candidates: Sequence[int]) -> int | None:
    """The recipient of `ref` among the campaign's `candidates` (under any known key)."""
    match = PATTERN.fullmatch(ref)
    if match is None:
        return None
    mac = base64.b32decode(match[2])
    for rid in candidates:
        if hasher.verify(_PURPOSE, f"{match[1]}:{rid}".encode(), mac):
            return rid
    return None
