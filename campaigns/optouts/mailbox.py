"""The company mailbox: emails that say no, read over IMAP.

The privacy policy promises that emailing the company unsubscribes. `check` reads
the configured folder, recognises opt-out wording (suppression.keywords), records
it for the sender's address, and moves each handled mail to the done folder only
after its record is committed, so a crash in between re-reads the mail and the
idempotent record changes nothing. Anything not clearly a no goes to the review
queue; nothing is dropped.
"""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import hashlib
import imaplib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage, Message
from email.utils import getaddresses
from html.parser import HTMLParser
from typing import Final

from sqlalchemy import Engine

from campaigns.optouts.events import (
    ERASURE_REQUEST,
    RECORD,
    REVIEW,
    SUPPRESS,
    OptOutEvent,
)
from campaigns.optouts.record import record
from suppression import keywords
from suppression.errors import InvalidIdentity, OutreachError
from suppression.identity import Identity, email_identity
from suppression.keys import Hasher
from suppression.ledger import OBJECTION, UNSUBSCRIBE, event_id

PROVIDER: Final = "mailbox"

# What a mail says (suppression.keywords) -> (our event name, action, scope, reason).
MAIL_INTENTS: Final[dict[str, tuple[str, str, str, str]]] = {
    # ALL-1 at once, and a person runs `outreach forget` for the erasure itself.
    keywords.MAIL_ERASURE: ("mail_erasure_request", ERASURE_REQUEST, "all", OBJECTION),
    keywords.MAIL_OBJECTION: ("mail_objection", SUPPRESS, "all", OBJECTION),  # ALL-1
    keywords.MAIL_UNSUBSCRIBE: ("mail_unsubscribe", SUPPRESS, "email", UNSUBSCRIBE),
    keywords.MAIL_UNCLEAR: ("mail_unclear", REVIEW, "email", ""),
}
AUTOMATIC: Final = "mail_automatic"  # auto-replies and bounces: recorded, nothing else
UNKNOWN_SENDER: Final = "unknown_sender"  # review kind: the From address does not validate

_AUTOMATIC_SENDERS = re.compile(r"^(?:mailer-daemon|postmaster|no-?reply|noreply)@", re.I)
_TEXT_LIMIT = 3000


class MailboxError(OutreachError):
    """The mailbox could not be read; the message names the setting, never an address."""


@dataclass(frozen=True, slots=True)
class MailboxConfig:
    host: str
    user: str
    password: str = field(repr=False)
    port: int | None = None  # None: 993 with SSL, 143 without
    folder: str = "INBOX"
    done_folder: str = "Behandlet"
    ssl: bool = True
    timeout: float = 30.0


@dataclass
class MailboxReport:
    """What one pass over the mailbox did, counted by outcome (no addresses)."""

    read: int = 0
    moved: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    names: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "read": self.read,
            "moved": self.moved,
            "outcomes": dict(self.outcomes),
            "events": dict(self.names),
        }


# --- reading one mail ---------------------------------------------------------------


class _TextOfHtml(HTMLParser):
    _BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._quote = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "head"):
            self._skip += 1
        if tag == "blockquote":
            self._quote += 1  # a quoted original: not the sender's words
        if tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head"):
            self._skip = max(0, self._skip - 1)
        if tag == "blockquote":
            self._quote = max(0, self._quote - 1)
        if tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip and not self._quote:
            self.parts.append(data)


def _html_text(html: str) -> str:
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


def _body_text(msg: Message) -> str:
    if not isinstance(msg, EmailMessage):
        return ""
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None or not isinstance(part, EmailMessage):
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ""
    return _html_text(content) if part.get_content_subtype() == "html" else content


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except (ValueError, IndexError, AttributeError):  # a malformed header
        return ""
    return str(value) if value is not None else ""


def _sender(msg: Message) -> tuple[str, Identity | None]:
    addresses = [addr for _name, addr in getaddresses([_header(msg, "From")]) if addr]
    if len(addresses) != 1:
        return "", None
    try:
        return addresses[0], email_identity(addresses[0])
    except InvalidIdentity:
        return addresses[0], None


def _is_automatic(msg: Message, address: str) -> bool:
    """Auto-replies and bounces (RFC 3834 Auto-Submitted, delivery reports): no person spoke."""
    auto = _header(msg, "Auto-Submitted").strip().lower()
    if auto and auto != "no":
        return True
    if msg.get_content_type() == "multipart/report":
        return True
    if _header(msg, "X-Autoreply") or _header(msg, "X-Autorespond"):
        return True
    precedence = _header(msg, "Precedence").strip().lower()
    return precedence == "auto_reply" or bool(_AUTOMATIC_SENDERS.match(address))


def parse_mail(raw: bytes, received_at: datetime) -> OptOutEvent:
    """The event of one mail in the mailbox."""
    now = received_at
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    message_id = _header(msg, "Message-ID").strip()[:300]
    ident = event_id(PROVIDER, message_id or hashlib.sha256(raw).hexdigest())
    subject = " ".join(_header(msg, "Subject").split())[:300]
    address, sender = _sender(msg)
    name, action, scope, reason = AUTOMATIC, RECORD, "email", ""
    text = review_kind = ""
    if not _is_automatic(msg, address):
        body = _body_text(msg)
        intent = keywords.classify_mail(subject, body)
        name, action, scope, reason = MAIL_INTENTS[intent]
        text = f"Subject: {subject}\n\n{keywords.fresh_text(body)[:_TEXT_LIMIT]}"
        review_kind = "mail_" + intent
        if sender is None:
            # A no we cannot key to an address is still not dropped: a person reads it.
            action, review_kind = REVIEW, UNKNOWN_SENDER
        if action == ERASURE_REQUEST:
            # The reviewer needs the address to run `outreach forget`; resolving the item
            # removes the text again (review.CLEARED).
            text = f"From: {address}\n{text}"
            review_kind = ERASURE_REQUEST
    return OptOutEvent(
        provider=PROVIDER,
        event_id=ident,
        name=name,
        action=action,
        occurred_at=now,
        identity=sender,
        scope=scope,
        reason=reason,
        text=text if action in (REVIEW, ERASURE_REQUEST) else "",
        review_kind=review_kind,
        evidence_ref=f"mailbox:{ident}",
        raw={"message": raw},
        stored={"message_id_hash": ident, "subject_length": len(subject)},
    )


# --- IMAP ----------------------------------------------------------------------------


def imap_utf7(name: str) -> str:
    """A mailbox name in IMAP's modified UTF-7 (RFC 3501 5.1.3): "Håndtert" -> "H&AOU-ndtert"."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).decode()
            out.append("&" + encoded.rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def mailbox_arg(name: str) -> str:
    """A mailbox name as an IMAP command argument: modified UTF-7, quoted."""
    encoded = imap_utf7(name)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ok(response: tuple[str, Sequence[object]], what: str) -> Sequence[object]:
    status, data = response
    if status != "OK":
        raise MailboxError(f"IMAP {what} failed")
    return data


def _connect(config: MailboxConfig) -> imaplib.IMAP4:
    try:
        if config.ssl:
            imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                config.host, config.port or 993, timeout=config.timeout
            )
        else:
            imap = imaplib.IMAP4(config.host, config.port or 143, timeout=config.timeout)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailboxError(f"IMAP_HOST: cannot connect ({type(exc).__name__})") from None
    try:
        imap.login(config.user, config.password)
        # Servers announce more after login (MOVE, UIDPLUS); imaplib keeps the first list.
        status, data = imap.capability()
        if status == "OK" and data and isinstance(data[-1], bytes):
            imap.capabilities = tuple(data[-1].decode("ascii", "replace").upper().split())
    except imaplib.IMAP4.error:
        imap.shutdown()
        raise MailboxError("IMAP_USER/IMAP_PASSWORD: login refused") from None
    return imap


def _fetch(imap: imaplib.IMAP4, uid: bytes) -> bytes | None:
    data = _ok(imap.uid("FETCH", uid.decode(), "(BODY.PEEK[])"), "FETCH")
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return None  # expunged by someone else meanwhile


def move(imap: imaplib.IMAP4, uid: bytes, folder: str) -> None:
    """Move one message (by UID) to `folder` (an encoded, quoted mailbox argument):
    MOVE (RFC 6851) where the server has it, else COPY, flag \\Deleted and expunge."""
    if "MOVE" in imap.capabilities:
        _ok(imap.uid("MOVE", uid.decode(), folder), "MOVE")
        return
    _ok(imap.uid("COPY", uid.decode(), folder), "COPY")
    _ok(imap.uid("STORE", uid.decode(), "+FLAGS.SILENT", r"(\Deleted)"), "STORE")
    if "UIDPLUS" in imap.capabilities:
        _ok(imap.uid("EXPUNGE", uid.decode()), "UID EXPUNGE")
    else:
        _ok(imap.expunge(), "EXPUNGE")


def check(
    engine: Engine,
    hasher: Hasher,
    config: MailboxConfig,
    *,
    now: Callable[[], datetime],
    limit: int = 500,
) -> MailboxReport:
    """Read up to `limit` mails of the folder, record each, move it to the done folder."""
    report = MailboxReport()
    imap = _connect(config)
    try:
        done = mailbox_arg(config.done_folder)
        # CREATE answers NO when the folder exists already; that is fine.
        imap.create(done)
        _ok(imap.select(mailbox_arg(config.folder)), "SELECT of IMAP_FOLDER")
        found = _ok(imap.uid("SEARCH", "ALL"), "SEARCH")
        uids = (found[0] if found and isinstance(found[0], bytes) else b"").split()
        for uid in uids[:limit]:
            raw = _fetch(imap, uid)
            if raw is None:
                continue
            report.read += 1
            received_at = now()
            event = parse_mail(raw, received_at)
            with engine.begin() as conn:
                (outcome,) = record(conn, hasher, [event], now=received_at, actor="mailbox")
            report.outcomes[outcome.outcome] += 1
            report.names[event.name] += 1
            move(imap, uid, done)  # only after the commit: a crash here re-reads the mail
            report.moved += 1
        imap.close()
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailboxError(
            f"IMAP_HOST: the mailbox failed mid-way ({type(exc).__name__})"
        ) from None
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            imap.logout()
    return report
