"""Progress and reports: counts per state and per exclusion reason, the funnel, and the
replies of the campaign's recipients still waiting in the review queue."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, String, cast, func, literal, select, union_all

from campaigns import campaign as campaign_mod
from campaigns.campaign_schema import FINAL_STATES, SENT, STATES, recipients
from campaigns.optouts import review
from suppression.schema import ledger_entries, unsubscribe_tokens


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

    def as_dict(self) -> dict[str, Any]:
        c = self.campaign
        return {
            "campaign": {
                "id": c.id,
                "name": c.name,
                "channel": c.channel,
                "purpose": c.purpose,
                "state": c.state,
            },
            "states": self.states,
            "exclusions": self.exclusions,
            "stopped_at_send": self.stopped_at_send,
            "funnel": dict(self.funnel()),
            "review_open": self.review_open,
        }


def counts(conn: Connection, campaign_id: int) -> dict[str, int]:
    rows = conn.execute(
        select(recipients.c.state, func.count())
        .where(recipients.c.campaign_id == campaign_id)
        .group_by(recipients.c.state)
    )
    found = {state: int(n) for state, n in rows}
    return {s: found.get(s, 0) for s in STATES}


def build(conn: Connection, campaign_id: int) -> Report:
    report = Report(campaign_mod.get(conn, campaign_id), states=counts(conn, campaign_id))
    for decision, rule, n in conn.execute(
        select(recipients.c.decision, recipients.c.rule, func.count())
        .where(recipients.c.campaign_id == campaign_id, recipients.c.state == "excluded")
        .group_by(recipients.c.decision, recipients.c.rule)
        .order_by(func.count().desc())
    ):
        report.exclusions.append({"reason": decision, "rule": rule, "count": int(n)})
    for rule, n in conn.execute(
        select(recipients.c.send_rule, func.count())
        .where(recipients.c.campaign_id == campaign_id, recipients.c.state == "excluded_at_send")
        .group_by(recipients.c.send_rule)
    ):
        report.stopped_at_send.append({"rule": rule, "count": int(n)})
    # Only SMS reports delivery (Twilio's status callbacks); elsewhere the step is left out.
    report.delivered = _delivered(conn, campaign_id) if report.campaign.channel == "sms" else None
    # Unsubscribes through this campaign's links: the web app records the evidence
    # "recipient:<id>" (or "token:<id>" for a token row of a launch before migration 0005).
    token_refs = union_all(
        select(literal("token:", String) + cast(unsubscribe_tokens.c.id, String)).where(
            unsubscribe_tokens.c.campaign_id == campaign_id
        ),
        select(literal("recipient:", String) + cast(recipients.c.id, String)).where(
            recipients.c.campaign_id == campaign_id, recipients.c.key_id.is_not(None)
        ),
    )
    report.unsubscribed = int(
        conn.execute(
            select(func.count(func.distinct(ledger_entries.c.key_hash))).where(
                ledger_entries.c.evidence_ref.in_(token_refs)
            )
        ).scalar_one()
    )
    report.review_open = review.count_open(
        conn, select(recipients.c.key_hash).where(recipients.c.campaign_id == campaign_id)
    )
    return report


def _delivered(conn: Connection, campaign_id: int) -> int | None:
    """Delivered per the provider's status callbacks, when the channel reports delivery."""
    try:
        from campaigns.optouts.schema import delivery_events
    except ImportError:
        return None
    n = conn.execute(
        select(func.count(func.distinct(recipients.c.id)))
        .select_from(
            recipients.join(
                delivery_events, delivery_events.c.provider_message_id == recipients.c.provider_id
            )
        )
        .where(recipients.c.campaign_id == campaign_id, delivery_events.c.status == "delivered")
    ).scalar_one()
    return int(n)


def html_report(report: Report) -> str:
    """One page, no scripts: the counts and a funnel chart drawn as inline SVG."""
    c = report.campaign
    funnel = report.funnel()
    top = max((n for _, n in funnel), default=0) or 1
    bar_h, gap, width = 34, 10, 560
    bars = []
    for i, (label, n) in enumerate(funnel):
        w = max(2, int(width * n / top))
        y = i * (bar_h + gap)
        x = (width - w) // 2 + 120
        bars.append(
            f'<rect x="{x}" y="{y}" width="{w}" height="{bar_h}" rx="4" fill="#1f5f8b" opacity="{1 - i * 0.12:.2f}"/>'
            f'<text x="0" y="{y + 22}" font-size="15">{html.escape(label)}</text>'
            f'<text x="{x + w + 8}" y="{y + 22}" font-size="15">{n}</text>'
        )
    svg_h = len(funnel) * (bar_h + gap)
    rows = "".join(
        f"<tr><td>{html.escape(state)}</td><td>{n}</td></tr>"
        for state, n in report.states.items()
        if n
    )
    excl = (
        "".join(
            f"<tr><td>{html.escape(e['reason'])}</td><td>{html.escape(e['rule'])}</td><td>{e['count']}</td></tr>"
            for e in report.exclusions
        )
        or '<tr><td colspan="3">none</td></tr>'
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Campaign {c.id}: {html.escape(c.name)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:820px;margin:2em auto;padding:0 1em;color:#1a1a1a}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border-bottom:1px solid #ccc;padding:.3em 1em;text-align:left}}</style>
</head><body>
<h1>Campaign {c.id}: {html.escape(c.name)}</h1>
<p>Channel <b>{html.escape(c.channel)}</b>, purpose <b>{html.escape(c.purpose)}</b>, state <b>{html.escape(c.state)}</b>.</p>
<h2>Funnel</h2>
<svg role="img" aria-label="funnel: {", ".join(f"{label} {n}" for label, n in funnel)}" width="{width + 200}" height="{svg_h}">{"".join(bars)}</svg>
<h2>Recipients by state</h2><table><tr><th>state</th><th>count</th></tr>{rows}</table>
<h2>Excluded at launch, by reason</h2><table><tr><th>reason</th><th>rule</th><th>count</th></tr>{excl}</table>
<h2>Review queue</h2><p>{report.review_open} open item(s) from this campaign's recipients: replies that may be a no, waiting for a person (<code>outreach review list</code>).</p>
</body></html>
"""
