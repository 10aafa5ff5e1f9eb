"""GD-5: an erasure reaches the processors that hold the person, retried until done.

`plan` runs inside `people.forget`'s transaction, before the plaintext is cleared (and
deletes the wrong-number pairings kept of the contact, `forget_wrong_numbers`), and
writes one `erasure_destinations` row per processor that holds the person, with what the
processor needs to find them once our plaintext is gone:

- `mailchimp:<list_id>`, for every audience the store knows the person in: the configured
  one when we hold their email, and every list a Mailchimp sync or webhook named in their
  ledger entries (EM-4). It keeps the subscriber hash, Mailchimp's member id: the MD5 of
  the lower-cased email, an unkeyed hash of it, so it is cleared once the row is done;
- `twilio`, when we sent them a message or they sent us one: the message SIDs (our
  recipients' provider ids, inbound messages' ids) as a JSON list.

`attempt` asks the processor to delete (Mailchimp's delete-permanent action, Twilio's
message DELETE); a 404 means already gone, which is done too. A failure leaves the row
`failed` with its reason and the next attempt after an exponential backoff; the worker's
clock hands due rows out again (`claim_due`). Nothing here reads the clock.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final, Self

import requests
from sqlalchemy import Connection, Engine, insert, select, update
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from campaigns.campaign_schema import recipients
from campaigns.channels.mailchimp.api import MailchimpApi
from campaigns.channels.twilio_sms import errors as twilio_errors
from campaigns.channels.twilio_sms.channel import TWILIO_API, settle_environment
from campaigns.optouts.schema import inbound_events
from campaigns.schema import erasure_destinations as table
from campaigns.schema import wrong_numbers
from suppression.errors import ChannelError
from suppression.identity import Identity
from suppression.keys import KeyedHash
from suppression.schema import ledger_entries

PENDING: Final = "pending"
DONE: Final = "done"
FAILED: Final = "failed"
MAILCHIMP: Final = "mailchimp:"  # + the audience's list id
TWILIO: Final = "twilio"
FIRST_RETRY: Final = timedelta(minutes=1)  # doubling after every failure ...
MAX_RETRY: Final = timedelta(hours=6)  # ... up to this
# A row handed to the worker is not handed out again before this, unless it fails sooner.
LEASE: Final = timedelta(minutes=10)
CLAIM_LIMIT: Final = 500

_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")
_LIST_ID = re.compile(r"[0-9A-Za-z]{1,40}")
# The Twilio SDK logs each request's URL at INFO (campaigns.channels.twilio_sms.channel).
_SDK_LOGGER = logging.getLogger("outreach.channels.twilio.http")
_SDK_LOGGER.setLevel(logging.WARNING)


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id of an address: the MD5 of the lower-cased email."""
    return hashlib.md5(email.strip().lower().encode("utf-8"), usedforsecurity=False).hexdigest()


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th attempt failed: 1 min, 2 min, 4 min, ... 6 h."""
    doublings = min(max(attempts - 1, 0), 20)
    return min(FIRST_RETRY * (1 << doublings), MAX_RETRY)


# -- planning (inside forget's transaction) ---------------------------------------------


def plan(
    conn: Connection,
    contact: Mapping[str, Any] | None,
    *,
    identity: Identity,
    hashes: Iterable[tuple[str, Sequence[KeyedHash]]],
    now: datetime,
    mailchimp_lists: Sequence[str] = (),
) -> str:
    """Record the destinations of one erasure; returns its reference (`erasure_ref`).

    `hashes` are the person's identities as (kind, keyed hashes under every key), as the
    erasure writes them to the ledger; `mailchimp_lists` the audiences this installation
    syncs to.
    """
    ref = uuid.uuid4().hex
    now = now.astimezone(UTC)
    if contact:
        forget_wrong_numbers(conn, int(contact["id"]))
    digests: dict[str, list[bytes]] = {}
    for kind, keys in hashes:
        digests.setdefault(kind, []).extend(k.digest for k in keys)
    email = (contact or {}).get("email") or (identity.value if identity.kind == "email" else None)
    rows: list[dict[str, object]] = []
    if email:
        configured = mailchimp_lists if contact and contact.get("email_hash") is not None else ()
        named = _audiences_named(conn, digests.get("email", ()))
        member = subscriber_hash(str(email))
        for list_id in dict.fromkeys([*configured, *named]):
            if _LIST_ID.fullmatch(list_id):
                rows.append(
                    {
                        "destination": MAILCHIMP + list_id,
                        "subscriber_hash": member,
                        "message_sids": None,
                    }
                )
    sids = _message_sids(conn, contact, digests.get("phone", ()))
    if sids:
        rows.append(
            {"destination": TWILIO, "subscriber_hash": None, "message_sids": json.dumps(sids)}
        )
    contact_id = contact["id"] if contact else None
    for row in rows:
        row.update(
            erasure_ref=ref,
            contact_id=contact_id,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    if rows:
        conn.execute(insert(table), rows)
    return ref


def forget_wrong_numbers(conn: Connection, contact_id: int) -> int:
    """ALL-4: the pairings of the contact with numbers reported as not theirs go with the
    rest of the person (an erased contact is never given a number again, so nothing needs
    them, and each ties the person to someone else's number). Here because every erasure
    plans its destinations in its transaction; returns the rows deleted."""
    deleted = conn.execute(
        wrong_numbers.delete().where(wrong_numbers.c.contact_id == contact_id)
    ).rowcount
    return int(deleted or 0)


def _audiences_named(conn: Connection, digests: Sequence[bytes]) -> list[str]:
    """Lists named by the person's Mailchimp ledger entries (`mailchimp:<list_id>:...`)."""
    if not digests:
        return []
    found = conn.execute(
        select(ledger_entries.c.evidence_ref)
        .where(
            ledger_entries.c.key_hash.in_(list(digests)),
            ledger_entries.c.source == "mailchimp",
            ledger_entries.c.evidence_ref.like("mailchimp:%"),
        )
        .order_by(ledger_entries.c.id)
    )
    return [part for (ref,) in found if (part := str(ref).split(":")[1].strip())]


def _message_sids(
    conn: Connection, contact: Mapping[str, Any] | None, phone_digests: Sequence[bytes]
) -> list[str]:
    """The SIDs of the Twilio messages we sent the person and they sent us."""
    found: list[str] = []
    if contact:
        found += conn.execute(
            select(recipients.c.provider_id)
            .where(recipients.c.contact_id == contact["id"], recipients.c.provider_id.is_not(None))
            .order_by(recipients.c.id)
        ).scalars()
    if phone_digests:
        found += conn.execute(
            select(inbound_events.c.provider_event_id)
            .where(
                inbound_events.c.provider == "twilio",
                inbound_events.c.key_hash.in_(list(phone_digests)),
            )
            .order_by(inbound_events.c.id)
        ).scalars()
    return list(dict.fromkeys(s for s in found if s and _SID.fullmatch(s)))


# -- what is recorded --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Destination:
    """One processor's part of one erasure, as explain and forget show it."""

    id: int
    erasure_ref: str
    destination: str
    status: str
    reason: str | None
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    done_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> Destination:
        m = row._mapping
        return cls(
            id=int(m["id"]),
            erasure_ref=str(m["erasure_ref"]),
            destination=str(m["destination"]),
            status=str(m["status"]),
            reason=m["reason"],
            attempts=int(m["attempts"]),
            next_attempt_at=_aware(m["next_attempt_at"]),
            created_at=_aware(m["created_at"]) or m["created_at"],
            done_at=_aware(m["done_at"]),
        )

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "id"}


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite gives back naive datetimes; every one stored here is UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def of_erasure(conn: Connection, erasure_ref: str) -> list[Destination]:
    query = select(table).where(table.c.erasure_ref == erasure_ref).order_by(table.c.id)
    return [Destination.of(r) for r in conn.execute(query)]


def of_contact(conn: Connection, contact_id: int) -> list[Destination]:
    query = select(table).where(table.c.contact_id == contact_id).order_by(table.c.id)
    return [Destination.of(r) for r in conn.execute(query)]


def claim_due(conn: Connection, now: datetime, limit: int = CLAIM_LIMIT) -> list[int]:
    """The ids of rows due for an attempt (pending or failed, next attempt at or before
    `now`); each is held for LEASE, so that the next run does not hand it out again while
    the worker has it (a lost worker message comes back after the lease)."""
    now = now.astimezone(UTC)
    ids = list(
        conn.execute(
            select(table.c.id)
            .where(table.c.status.in_((PENDING, FAILED)), table.c.next_attempt_at <= now)
            .order_by(table.c.next_attempt_at, table.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).scalars()
    )
    if ids:
        conn.execute(
            update(table)
            .where(table.c.id.in_(ids), table.c.status != DONE)
            .values(next_attempt_at=now + LEASE)
        )
    return [int(i) for i in ids]


# -- the processors ----------------------------------------------------------------------


class MailchimpEraser:
    """Deletes a member permanently from an audience (all their data, no re-import)."""

    def __init__(self, api: MailchimpApi) -> None:
        self.api = api

    def erase(self, list_id: str, member: str) -> None:
        try:
            answer = self.api.call(
                self.api.client.lists.delete_list_member_permanent, list_id, member
            )
        except ChannelError as exc:
            if exc.code == "404":
                return  # not (or no longer) in the audience
            raise
        # The SDK hands back the HTTP response of an answer without a JSON body.
        status = answer.status_code if isinstance(answer, requests.Response) else 204
        if status >= 300 and status != 404:
            raise ChannelError(f"mailchimp http {status}", code=str(status))


class TwilioEraser:
    """Deletes messages from the account's message log, by SID."""

    def __init__(
        self, account_sid: str, auth_token: str, base_url: str | None = None, timeout: float = 10
    ) -> None:
        http = TwilioHttpClient(timeout=timeout, logger=_SDK_LOGGER)
        self._session = http.session
        if self._session is not None:
            settle_environment(self._session, base_url or TWILIO_API)
        self.client = Client(account_sid, auth_token, http_client=http)
        if base_url:
            self.client.api.base_url = base_url.rstrip("/")

    def erase(self, sids: Iterable[str]) -> None:
        for sid in sids:
            try:
                self.client.messages(sid).delete()
            except TwilioRestException as exc:
                if exc.status == 404:
                    continue  # already gone
                raise twilio_errors.from_rest_error(exc) from None
            except requests.RequestException as exc:
                raise twilio_errors.from_transport_error(exc) from None

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


@dataclass
class Processors:
    """The processors this process can reach; None: not configured here."""

    mailchimp: MailchimpEraser | None = None
    twilio: TwilioEraser | None = None

    def erase(self, destination: str, member: str | None, sids: Sequence[str]) -> None:
        """Raises ChannelError when the processor did not confirm."""
        if destination.startswith(MAILCHIMP):
            if self.mailchimp is None:
                raise ChannelError("mailchimp is not configured (MAILCHIMP_API_KEY)")
            if member:
                self.mailchimp.erase(destination.removeprefix(MAILCHIMP), member)
        elif destination == TWILIO:
            if self.twilio is None:
                raise ChannelError("twilio is not configured (TWILIO_ACCOUNT_SID)")
            self.twilio.erase(sids)
        else:
            raise ChannelError(f"unknown destination {destination[:40]}")

    def close(self) -> None:
        if self.twilio is not None:
            self.twilio.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- attempts ----------------------------------------------------------------------------


def attempt(
    engine: Engine, destination_id: int, processors: Processors, now: datetime
) -> Destination | None:
    """One attempt at one destination (none if it is done already); the outcome is
    committed before this returns. Processors' messages carry no identity (GD-4); any
    other error is recorded by its type only."""
    now = now.astimezone(UTC)
    with engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.id == destination_id)).first()
    if row is None or row.status == DONE:
        return None
    sids = json.loads(row.message_sids) if row.message_sids else []
    failure: str | None = None
    try:
        processors.erase(row.destination, row.subscriber_hash, sids)
    except ChannelError as exc:
        failure = str(exc)[:300] or type(exc).__name__
    except Exception as exc:  # recorded and retried, never lost
        failure = f"unexpected error ({type(exc).__name__})"
    attempts = int(row.attempts) + 1
    values: dict[str, object]
    if failure is None:
        values = dict(
            status=DONE, reason=None, done_at=now, next_attempt_at=None, subscriber_hash=None
        )
    else:
        values = dict(status=FAILED, reason=failure, next_attempt_at=now + backoff(attempts))
    with engine.begin() as conn:
        # A row another attempt finished meanwhile stays done.
        conn.execute(
            update(table)
            .where(table.c.id == destination_id, table.c.status != DONE)
            .values(attempts=table.c.attempts + 1, **values)
        )
        updated = conn.execute(select(table).where(table.c.id == destination_id)).first()
    return Destination.of(updated) if updated is not None else None


def attempt_all(
    engine: Engine, destination_ids: Iterable[int], processors: Processors, now: datetime
) -> list[Destination]:
    """One attempt at each destination, in order."""
    done = (attempt(engine, i, processors, now) for i in destination_ids)
    return [d for d in done if d is not None]
