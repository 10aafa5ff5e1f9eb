"""What a channel may need to know about recipients it only has the ids of.

`Channel.finalize` and `Channel.reconcile` receive recipient ids; a provider that must
name the people again (Mailchimp's segment, Twilio's message list) asks a
`RecipientLookup`, which the composition root builds over the store with
`recipient_lookup`. Channels themselves never hold a database engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, select

from campaigns.campaign_schema import recipients
from campaigns.schema import contacts
from suppression import tokens
from suppression.keys import Hasher

CHUNK = 5000


@dataclass(frozen=True, slots=True)
class RecipientRef:
    recipient_id: int
    email: str | None  # None after erasure
    phone: str | None  # E.164; None after erasure
    unsubscribe_url: str  # the recipient's own link (its token is unique to this recipient)
    provider_id: str | None


RecipientLookup = Callable[[Sequence[int]], dict[int, RecipientRef]]


def recipient_lookup(engine: Engine, hasher: Hasher, public_url: str) -> RecipientLookup:
    """A lookup over the store: {recipient_id: RecipientRef} for the ids that exist."""
    base = public_url.rstrip("/")

    def lookup(ids: Sequence[int]) -> dict[int, RecipientRef]:
        found: dict[int, RecipientRef] = {}
        wanted = list(dict.fromkeys(ids))
        with engine.connect() as conn:
            signer = tokens.signer(conn, hasher)
            for start in range(0, len(wanted), CHUNK):
                rows = conn.execute(
                    select(
                        recipients.c.id,
                        recipients.c.token_id,
                        recipients.c.key_id,
                        recipients.c.provider_id,
                        contacts.c.email,
                        contacts.c.phone,
                    )
                    .join(contacts, contacts.c.id == recipients.c.contact_id)
                    .where(recipients.c.id.in_(wanted[start : start + CHUNK]))
                )
                for r in rows:
                    # Only a recipient allowed at launch has a token (and a key id).
                    allowed = r.token_id is not None or r.key_id is not None
                    url = (
                        f"{base}/u/{tokens.for_recipient(signer, int(r.id), r.token_id)}"
                        if allowed
                        else ""
                    )
                    found[int(r.id)] = RecipientRef(int(r.id), r.email, r.phone, url, r.provider_id)
        return found

    return lookup
