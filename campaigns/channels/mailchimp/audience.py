"""The Mailchimp audience: merge fields, member upserts, static segments, EM-4 pushes.

Upserts never make anyone subscribed who is not new to the audience. The batch
endpoint (`POST /lists/{id}`, at most 500 members) is called twice:

1. `update_existing: false`, members with status `subscribed`: only new addresses are
   created (subscribed, since the policy allowed the send); an existing member comes
   back as an `ERROR_CONTACT_EXISTS` error and is left untouched;
2. for the existing ones, `update_existing: true` with merge fields and *no status*:
   their merge fields (this campaign's unsubscribe link) are updated, their status
   stays what Mailchimp holds, and the answer tells us that status.

Members Mailchimp holds as unsubscribed or cleaned therefore stay so, and are reported
(`SyncResult.gone`) so that the caller records them in the ledger (EM-4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from campaigns.channels.mailchimp.api import MailchimpApi, with_retries
from suppression.errors import ChannelError

BATCH: Final = 500  # Mailchimp's limit per batch call, for members and segment changes
URL_FIELD: Final = "UNSUBURL"  # our unsubscribe link, per member (ES-4)
NOTICE_FIELD: Final = "SRCNOTICE"  # GD-1: where we got the person's data
FIRST_NAME: Final = "FNAME"
LAST_NAME: Final = "LNAME"
# Merge fields the campaign content needs beyond Mailchimp's defaults: (tag, name, type).
MERGE_FIELDS: Final = (
    (URL_FIELD, "Avmeldingslenke", "url"),
    (NOTICE_FIELD, "Kildeopplysning", "text"),
)
SUBSCRIBED: Final = "subscribed"
GONE: Final = ("unsubscribed", "cleaned")  # statuses we never undo
EXISTS: Final = "ERROR_CONTACT_EXISTS"
MAX_PAGE: Final = 1000


@dataclass(frozen=True, slots=True)
class Member:
    email: str  # canonical (lower-cased) address
    merge_fields: dict[str, str]


@dataclass
class SyncResult:
    """What Mailchimp holds for each synced address (keys: lower-cased addresses)."""

    subscribed: set[str] = field(default_factory=set)
    gone: dict[str, str] = field(default_factory=dict)  # address -> unsubscribed | cleaned
    other: dict[str, str] = field(default_factory=dict)  # address -> pending, transactional...
    errors: dict[str, str] = field(default_factory=dict)  # address -> Mailchimp's error code

    def merge(self, other: SyncResult) -> None:
        self.subscribed |= other.subscribed
        self.gone.update(other.gone)
        self.other.update(other.other)
        self.errors.update(other.errors)

    def note(self, email: str, status: str) -> None:
        if status == SUBSCRIBED:
            self.subscribed.add(email)
        elif status in GONE:
            self.gone[email] = status
        else:
            self.other[email] = status


def chunks(items: Sequence[Any], size: int = BATCH) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class Audience:
    def __init__(self, api: MailchimpApi, list_id: str) -> None:
        self.api = api
        self.list_id = list_id
        self._fields_checked = False

    @property
    def lists(self) -> Any:
        return self.api.client.lists

    # -- merge fields ------------------------------------------------------------------

    def ensure_merge_fields(self) -> None:
        """Add the merge fields our content uses when the audience lacks them."""
        if self._fields_checked:
            return
        have = self._merge_tags()
        for tag, name, kind in MERGE_FIELDS:
            if tag in have:
                continue
            try:
                self.api.call(
                    self.lists.add_list_merge_field,
                    self.list_id,
                    {"tag": tag, "name": name, "type": kind, "required": False},
                )
            except ChannelError as exc:
                # Another worker added it in the meantime ("already exists" is a 400).
                if not exc.permanent:
                    raise
                if tag not in self._merge_tags():
                    raise
        self._fields_checked = True

    def _merge_tags(self) -> set[str]:
        found = self.api.call(
            lambda: self.lists.get_list_merge_fields(self.list_id, count=MAX_PAGE)
        )
        return {str(f.get("tag")) for f in found.get("merge_fields", [])}

    # -- members -----------------------------------------------------------------------

    def upsert(self, members: Sequence[Member]) -> SyncResult:
        """Create new members subscribed and update existing members' merge fields, in
        batches of at most 500 on at most `max_connections` connections."""
        result = SyncResult()
        for part in self.api.map(self._upsert_chunk, chunks(members)):
            result.merge(part)
        return result

    def _upsert_chunk(self, members: Sequence[Member]) -> SyncResult:
        result = SyncResult()
        by_email = {m.email.lower(): m for m in members}
        created = self.api.call(
            self.lists.batch_list_members,
            self.list_id,
            {
                "members": [
                    {"email_address": m.email, "status": SUBSCRIBED, "merge_fields": m.merge_fields}
                    for m in members
                ],
                "update_existing": False,
            },
        )
        for member in created.get("new_members", []):
            result.note(str(member["email_address"]).lower(), str(member["status"]))
        existing: list[Member] = []
        for error in created.get("errors", []):
            email = str(error.get("email_address", "")).lower()
            if email not in by_email:
                continue
            if error.get("error_code") == EXISTS:
                existing.append(by_email[email])
            else:
                result.errors[email] = str(error.get("error_code") or "error")
        if existing:
            # No "status" here: an existing member keeps the status Mailchimp holds.
            updated = self.api.call(
                self.lists.batch_list_members,
                self.list_id,
                {
                    "members": [
                        {"email_address": m.email, "merge_fields": m.merge_fields} for m in existing
                    ],
                    "update_existing": True,
                },
            )
            for member in updated.get("updated_members", []):
                result.note(str(member["email_address"]).lower(), str(member["status"]))
            for error in updated.get("errors", []):
                email = str(error.get("email_address", "")).lower()
                if email in by_email:
                    result.errors[email] = str(error.get("error_code") or "error")
        answered = result.subscribed | set(result.gone) | set(result.other) | set(result.errors)
        for email in by_email.keys() - answered:
            result.errors[email] = "no_answer_for_member"
        return result

    def unsubscribe(self, emails: Sequence[str]) -> None:
        """EM-4: push ledger suppressions to the audience (status unsubscribed)."""

        def push(part: Sequence[str]) -> None:
            with_retries(
                lambda: self.api.call(
                    self.lists.batch_list_members,
                    self.list_id,
                    {
                        "members": [{"email_address": e, "status": "unsubscribed"} for e in part],
                        "update_existing": True,
                    },
                )
            )

        self.api.map(push, chunks(emails))

    # -- segments ----------------------------------------------------------------------

    def create_segment(self, name: str) -> int:
        """A new, empty static segment (in Mailchimp, a static segment is a tag)."""
        created = self.api.call(
            self.lists.create_segment, self.list_id, {"name": name, "static_segment": []}
        )
        return int(created["id"])

    def add_to_segment(self, segment_id: int, emails: Sequence[str]) -> None:
        self._segment_change(segment_id, emails, "members_to_add")

    def remove_from_segment(self, segment_id: int, emails: Sequence[str]) -> None:
        self._segment_change(segment_id, emails, "members_to_remove")

    def _segment_change(self, segment_id: int, emails: Sequence[str], key: str) -> None:
        def change(part: Sequence[str]) -> None:
            with_retries(
                lambda: self.api.call(
                    self.lists.batch_segment_members,
                    {key: list(part)},
                    self.list_id,
                    str(segment_id),
                )
            )

        self.api.map(change, chunks(emails))
