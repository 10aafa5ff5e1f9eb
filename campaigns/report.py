"""Progress and reports: counts per state and per exclusion reason, the funnel, the
replies of the campaign's recipients still waiting in the review queue, what the
provider reported back, and the message as a recipient reads it.

The report is read by a marketer, not by a developer: Norwegian first, English on
request, every rule id with its sentence (docs/rules.md) and every code with a word.
`build` gathers the facts; `view` turns them into the words of one language (through
the caller's gettext, so that the catalogue of worker/web/locale is the one source of
every translation) and both the terminal text and the HTML page are drawn from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, String, cast, func, literal, select, union_all

from campaigns import campaign as campaign_mod
from campaigns.campaign_schema import FINAL_STATES, SENT, STATES, recipients
from campaigns.optouts import review
from campaigns.optouts.schema import delivery_events
from campaigns.templates import example_values
from suppression.schema import ledger_entries, unsubscribe_tokens

OSLO: Final = ZoneInfo("Europe/Oslo")
Gettext = Callable[[str], str]

# Each rule id with its sentence as docs/rules.md states it (English: the msgid; the
# Norwegian is in worker/web/locale). tests/integration/test_report.py fails when
# docs/rules.md says otherwise.
RULE_TITLES: Final[Mapping[str, str]] = {
    "ALL-1": "Objection is absolute",
    "ALL-2": "Channel opt-out",
    "ALL-3": "Alarm contacts are never marketed to",
    "ALL-4": "Erasure keeps the no",
    "ALL-5": "No resurrection",
    "ALL-6": "Send-time check",
    "ALL-7": "Sender identity",
    "ALL-8": "Frequency cap (POLICY)",
    "ES-1": "Prior consent",
    "ES-2": "Soft opt-in for customers",
    "ES-3": "A consent request is marketing",
    "ES-4": "Opt-out in every message",
    "ES-5": "Partner consent age (POLICY)",
    "ES-6": "Quiet hours for SMS (POLICY)",
    "TP-1": "Register",
    "TP-2": "Wash freshness",
    "TP-3": "Customer exception",
    "TP-4": "Explicit request",
    "TP-5": "Calling hours",
    "TP-6": "Caller id",
    "TP-7": '"Don\'t call me" on a call',
    "GD-1": "Source notice (art. 14)",
    "GD-2": "Retention (POLICY)",
    "GD-3": "Access",
    "GD-4": "Privacy by design (art. 25)",
    "EM-1": "One-click (RFC 8058)",
    "EM-2": "GET never unsubscribes",
    "EM-3": "Honour within 2 days",
    "EM-4": "Mailchimp state is mirrored both ways",
    "SM-1": "Keywords",
    "SM-2": "Twilio error 21610",
    "SM-3": "Link in the body",
}

# The words for the codes the store keeps (msgids; translated by the caller's gettext).
STATE_LABELS: Final[Mapping[str, str]] = {
    "excluded": "excluded at launch",
    "queued": "queued",
    "sending": "sending",
    "staged": "handed to the provider",
    "sent": "sent",
    "failed": "failed",
    "excluded_at_send": "stopped at send time",
    "unknown": "unknown (being checked with the provider)",
    "cancelled": "cancelled",
}
CAMPAIGN_STATE_LABELS: Final[Mapping[str, str]] = {
    "draft": "draft",
    "running": "running",
    "paused": "paused",
    "done": "done",
    "cancelled": "cancelled",
}
CHANNEL_LABELS: Final[Mapping[str, str]] = {
    "email": "email",
    "sms": "text messages",
    "call": "phone calls",
    "post": "addressed advertising",
}
DECISION_LABELS: Final[Mapping[str, str]] = {
    "send": "may be contacted",
    "excluded:alarm_contact": "alarm contact",
    "excluded:objection": "objected to marketing",
    "excluded:erasure": "erased",
    "excluded:channel_opt_out": "unsubscribed from the channel",
    "excluded:frequency_cap": "over the frequency cap",
    "excluded:no_consent": "no consent",
    "excluded:consent_too_old": "consent too old",
    "excluded:register": "listed in the register",
    "excluded:register_stale": "register wash too old",
    "excluded:no_address": "no address",
}
FUNNEL_LABELS: Final[Mapping[str, str]] = {
    "audience": "audience",
    "eligible": "eligible",
    "sent": "sent",
    "delivered": "delivered",
    "unsubscribed": "unsubscribed",
}
# What the provider reports back, in this order (Mailchimp: opens and clicks; Twilio:
# delivery status callbacks). None: the store records nothing of it for the provider.
DELIVERY_LABELS: Final[Mapping[str, str]] = {
    "delivered": "delivered",
    "bounced": "bounced",
    "opened": "opened",
    "clicked": "clicked",
}
PROVIDER_NAMES: Final[Mapping[str, str]] = {
    "twilio": "Twilio",
    "mailchimp": "Mailchimp",
    "outbox": "the outbox",
    "call_centre": "the call centre",
}
# Twilio's MessageStatus values that mean the message did not reach the phone.
_TWILIO_BOUNCED: Final = ("undelivered", "failed")
# The made-up person a sample message is rendered for (synthetic: no one's data).
SAMPLE_FIRST_NAME: Final = "Kari"
SAMPLE_LAST_NAME: Final = "Nordmann"
SAMPLE_PARTNER: Final = "Eksempelpartner AS"
SAMPLE_TOKEN: Final = "EKSEMPEL"


class Template(Protocol):
    def render(self, *args: Any, **kwargs: Any) -> str: ...


@dataclass(frozen=True, slots=True)
class Sender:
    """What a rendered sample needs from the settings: who sends, and the public URL."""

    organisation_name: str
    organisation_number: str
    public_url: str


@dataclass
class Report:
    campaign: campaign_mod.Campaign
    states: dict[str, int] = field(default_factory=dict)
    exclusions: list[dict[str, Any]] = field(default_factory=list)
    stopped_at_send: list[dict[str, Any]] = field(default_factory=list)
    delivered: int | None = None
    unsubscribed: int = 0
    # Open review items from the recipients' addresses on the campaign's channel: replies
    # that may be a no and that nobody has decided yet (`outreach review list`).
    review_open: int = 0
    # Who carried the messages (twilio, mailchimp, outbox, call_centre; "" while nothing
    # was handed to one), and what it reported per DELIVERY_LABELS key: a count, or None
    # when it reports nothing of it.
    provider: str = ""
    delivery: dict[str, int | None] = field(default_factory=dict)
    # The subject and body as a made-up recipient would get them (never sent).
    sample: tuple[str, str] | None = None

    @property
    def audience(self) -> int:
        return sum(self.states.values())

    @property
    def eligible(self) -> int:
        return self.audience - self.states.get("excluded", 0)

    @property
    def finished(self) -> int:
        return sum(n for s, n in self.states.items() if s in FINAL_STATES)

    def funnel(self) -> list[tuple[str, int]]:
        steps = [
            ("audience", self.audience),
            ("eligible", self.eligible),
            ("sent", self.states.get(SENT, 0)),
        ]
        if self.delivered is not None:
            steps.append(("delivered", self.delivered))
        steps.append(("unsubscribed", self.unsubscribed))
        return steps

    def as_dict(self, gettext: Gettext | None = None) -> dict[str, Any]:
        """The report for --json: codes as stored, times in ISO 8601 with the Oslo offset,
        and with `gettext` each rule's sentence in the report's language."""
        c = self.campaign
        say = gettext or _identity
        out: dict[str, Any] = {
            "campaign": {
                "id": c.id,
                "name": c.name,
                "channel": c.channel,
                "purpose": c.purpose,
                "state": c.state,
                "created_at": _iso(c.created_at),
                "launched_at": _iso(c.launched_at),
                "finished_at": _iso(c.finished_at),
            },
            "states": self.states,
            "exclusions": [{**e, "rule_text": rule_text(e["rule"], say)} for e in self.exclusions],
            "stopped_at_send": [
                {**e, "rule_text": rule_text(e["rule"], say)} for e in self.stopped_at_send
            ],
            "funnel": dict(self.funnel()),
            "review_open": self.review_open,
            "delivery": {"provider": self.provider, **self.delivery},
        }
        if self.sample is not None:
            out["sample"] = {
                "example": True,
                "recipient": f"{SAMPLE_FIRST_NAME} {SAMPLE_LAST_NAME}",
                "subject": self.sample[0],
                "body": self.sample[1],
            }
        return out


def _identity(text: str) -> str:
    return text


def _oslo(moment: datetime) -> datetime:
    """In Oslo time. SQLite hands back the naive UTC times we store; PostgreSQL aware ones."""
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment).astimezone(OSLO)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else _oslo(moment).isoformat()


def counts(conn: Connection, campaign_id: int) -> dict[str, int]:
    rows = conn.execute(
        select(recipients.c.state, func.count())
        .where(recipients.c.campaign_id == campaign_id)
        .group_by(recipients.c.state)
    )
    found = {state: int(n) for state, n in rows}
    return {s: found.get(s, 0) for s in STATES}


def build(conn: Connection, campaign_id: int, *, sender: Sender | None = None) -> Report:
    """The campaign's report; with `sender`, its message rendered for a made-up person."""
    report = Report(campaign_mod.get(conn, campaign_id), states=counts(conn, campaign_id))
    for decision, rule, n in conn.execute(
        select(recipients.c.decision, recipients.c.rule, func.count())
        .where(recipients.c.campaign_id == campaign_id, recipients.c.state == "excluded")
        .group_by(recipients.c.decision, recipients.c.rule)
        .order_by(func.count().desc(), recipients.c.decision)
    ):
        report.exclusions.append({"reason": decision, "rule": rule, "count": int(n)})
    for decision, rule, n in conn.execute(
        select(recipients.c.send_decision, recipients.c.send_rule, func.count())
        .where(recipients.c.campaign_id == campaign_id, recipients.c.state == "excluded_at_send")
        .group_by(recipients.c.send_decision, recipients.c.send_rule)
    ):
        report.stopped_at_send.append({"reason": decision or "", "rule": rule, "count": int(n)})
    report.provider = _provider(conn, report.campaign)
    report.delivery = _delivery(conn, campaign_id, report.provider)
    report.delivered = report.delivery.get("delivered")
    report.unsubscribed = _unsubscribed(conn, campaign_id)
    report.review_open = review.count_open(
        conn, select(recipients.c.key_hash).where(recipients.c.campaign_id == campaign_id)
    )
    if sender is not None:
        report.sample = sample_message(report.campaign, sender)
    return report


def _unsubscribed(conn: Connection, campaign_id: int) -> int:
    """Unsubscribes through this campaign's links: the web app records the evidence
    "recipient:<id>" (or "token:<id>" for a token row of a launch before migration 0005)."""
    token_refs = union_all(
        select(literal("token:", String) + cast(unsubscribe_tokens.c.id, String)).where(
            unsubscribe_tokens.c.campaign_id == campaign_id
        ),
        select(literal("recipient:", String) + cast(recipients.c.id, String)).where(
            recipients.c.campaign_id == campaign_id, recipients.c.key_id.is_not(None)
        ),
    )
    return int(
        conn.execute(
            select(func.count(func.distinct(ledger_entries.c.key_hash))).where(
                ledger_entries.c.evidence_ref.in_(token_refs)
            )
        ).scalar_one()
    )


def _provider(conn: Connection, camp: campaign_mod.Campaign) -> str:
    """Who carried the messages: the outbox when no provider was configured (its ids
    say so), else the channel's provider; "" before any message was handed over."""
    if camp.channel == "call":
        return "call_centre"
    provider_id = conn.execute(
        select(recipients.c.provider_id)
        .where(recipients.c.campaign_id == camp.id, recipients.c.provider_id.is_not(None))
        .limit(1)
    ).scalar()
    if provider_id is None:
        return ""  # nothing handed to a provider yet
    if str(provider_id).startswith("outbox:"):
        return "outbox"
    return "twilio" if camp.channel == "sms" else "mailchimp"


def _delivery(conn: Connection, campaign_id: int, provider: str) -> dict[str, int | None]:
    """What the provider reported, per DELIVERY_LABELS key. Only Twilio's status callbacks
    are stored (campaigns.optouts.record): delivered, and undelivered or failed as
    bounced; opens and clicks Twilio does not report. Mailchimp's reports are not fetched
    yet, so nothing of them is claimed (None, never 0)."""
    empty: dict[str, int | None] = dict.fromkeys(DELIVERY_LABELS)
    if provider != "twilio":
        return empty
    joined = recipients.join(
        delivery_events, delivery_events.c.provider_message_id == recipients.c.provider_id
    )

    def recipients_with(statuses: tuple[str, ...]) -> int:
        return int(
            conn.execute(
                select(func.count(func.distinct(recipients.c.id)))
                .select_from(joined)
                .where(
                    recipients.c.campaign_id == campaign_id,
                    delivery_events.c.status.in_(statuses),
                )
            ).scalar_one()
        )

    delivered = recipients_with(("delivered",))
    return {**empty, "delivered": delivered, "bounced": recipients_with(_TWILIO_BOUNCED)}


def sample_message(camp: campaign_mod.Campaign, sender: Sender) -> tuple[str, str]:
    """The subject and body as a made-up partner lead would get them: a source notice
    naming a made-up partner (GD-1) and a link that is not anyone's token."""
    values = example_values(
        sender.public_url,
        sender.organisation_name,
        sender.organisation_number,
        SAMPLE_PARTNER,
        SAMPLE_FIRST_NAME,
        SAMPLE_LAST_NAME,
        SAMPLE_TOKEN,
    )
    subject, body = camp.message_template().render(values)
    return subject, body.strip("\n")


def rule_text(rule: str | None, gettext: Gettext) -> str:
    """ "ES-1 Prior consent": the id and its sentence, or the id alone for one we have no
    sentence for (never a blank)."""
    if not rule:
        return ""
    title = RULE_TITLES.get(rule)
    return f"{rule} {gettext(title)}" if title else rule


def _label(table: Mapping[str, str], code: str, gettext: Gettext) -> str:
    return gettext(table[code]) if code in table else code


def _when(moment: datetime | None, gettext: Gettext) -> str:
    if moment is None:
        return gettext("not yet")
    return _oslo(moment).strftime("%Y-%m-%d %H:%M")


def view(report: Report, gettext: Gettext) -> dict[str, Any]:
    """The report in the words of one language: what the text and the HTML both show."""
    c = report.campaign
    say = gettext
    if report.provider:
        provider_name = say(PROVIDER_NAMES.get(report.provider, report.provider))
        not_reported = say("not reported by %(provider)s") % {"provider": provider_name}
    else:
        provider_name, not_reported = say("the provider"), say("nothing sent yet")
    return {
        "id": c.id,
        "name": c.name,
        "channel": _label(CHANNEL_LABELS, c.channel, say),
        "purpose": c.purpose,
        "state": _label(CAMPAIGN_STATE_LABELS, c.state, say),
        "dates": [
            (say("Created"), _when(c.created_at, say)),
            (say("Launched"), _when(c.launched_at, say)),
            (say("Finished"), _when(c.finished_at, say)),
        ],
        "states": [(_label(STATE_LABELS, s, say), n) for s, n in report.states.items() if n],
        "exclusions": [
            (_label(DECISION_LABELS, e["reason"], say), rule_text(e["rule"], say), e["count"])
            for e in report.exclusions
        ],
        "stopped_at_send": [
            (_label(DECISION_LABELS, e["reason"], say), rule_text(e["rule"], say), e["count"])
            for e in report.stopped_at_send
        ],
        "provider": provider_name,
        "delivery": [
            (say(label), not_reported if report.delivery.get(key) is None else report.delivery[key])
            for key, label in DELIVERY_LABELS.items()
        ],
        "funnel": [(_label(FUNNEL_LABELS, k, say), n) for k, n in report.funnel()],
        "review_open": report.review_open,
        "sample": report.sample,
        "sample_recipient": f"{SAMPLE_FIRST_NAME} {SAMPLE_LAST_NAME}",
        "zone": "Europe/Oslo",
    }


def text_lines(report: Report, gettext: Gettext) -> list[str]:
    """The report for the terminal, in the language of `gettext`."""
    v = view(report, gettext)
    say = gettext
    lines = [
        say("Campaign %(id)s: %(name)s") % {"id": v["id"], "name": v["name"]},
        say("Channel %(channel)s, purpose %(purpose)s, state %(state)s.")
        % {"channel": v["channel"], "purpose": v["purpose"], "state": v["state"]},
    ]
    lines += [f"{label}: {when}" for label, when in v["dates"]]
    lines.append(say("Times are in %(zone)s.") % {"zone": v["zone"]})
    lines += ["", say("Recipients by state")]
    lines += [f"  {label}: {n}" for label, n in v["states"]] or [f"  {say('none')}"]
    lines += ["", say("Excluded at launch, by reason")]
    lines += [f"  {reason} ({rule}): {n}" for reason, rule, n in v["exclusions"]] or [
        f"  {say('none')}"
    ]
    if v["stopped_at_send"]:
        lines += ["", say("Stopped at send time, by reason")]
        lines += [f"  {reason} ({rule}): {n}" for reason, rule, n in v["stopped_at_send"]]
    lines += ["", say("Reported by %(provider)s") % {"provider": v["provider"]}]
    lines += [f"  {label}: {n}" for label, n in v["delivery"]]
    lines += ["", say("Funnel") + ": " + " → ".join(f"{label} {n}" for label, n in v["funnel"])]
    lines.append(
        say("Review queue: %(n)s open from this campaign's recipients (outreach review list).")
        % {"n": v["review_open"]}
    )
    if v["sample"] is not None:
        subject, body = v["sample"]
        lines += [
            "",
            say("Example")
            + ": "
            + say(
                "the message as %(person)s, a made-up recipient, would get it; it was sent to no one"
            )
            % {"person": v["sample_recipient"]},
        ]
        if subject:
            lines.append(f"  {say('Subject')}: {subject}")
        lines += [f"  | {line}".rstrip() for line in body.split("\n")]
    return lines


def html_report(report: Report, template: Template, gettext: Gettext, lang: str) -> str:
    """One page, no scripts (worker/web/templates/report.html, autoescaped): the view and
    a funnel chart drawn as inline SVG."""
    v = view(report, gettext)
    top = max((n for _, n in v["funnel"]), default=0) or 1
    bar_h, gap, width = 34, 10, 560
    bars = []
    for i, (label, n) in enumerate(v["funnel"]):
        w = max(2, int(width * n / top))
        y = i * (bar_h + gap)
        bars.append(
            {
                "label": label,
                "n": n,
                "x": (width - w) // 2 + 160,
                "y": y,
                "w": w,
                "opacity": f"{1 - i * 0.12:.2f}",
            }
        )
    return template.render(
        lang=lang, r=v, bars=bars, bar_h=bar_h, svg_w=width + 240, svg_h=len(bars) * (bar_h + gap)
    )
