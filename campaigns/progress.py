"""What a running campaign is doing now, in words: sending, waiting (and until when, by
which rule), or, for a call campaign, a list waiting to be exported.

A queued recipient says nothing about when it goes. An SMS campaign launched at 06:45
Oslo time has its batches waiting for 09:00 (ES-6); without this, `campaign status`
showed "running: queued 5" and nothing else (issue 19, point 3). The expected start is
computed from the campaign and `now`, so that it is right before the worker has taken
a batch too (a launch with --no-wait, a production worker that is busy); a batch delayed
for another reason (a provider's rate limit) says its own time (batches.not_before).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, func, select

from campaigns import campaign as campaign_mod
from campaigns.campaign_schema import LISTED, QUEUED, batches, recipients
from suppression.calendar import OSLO, may_send_sms, next_opening

ES6_REASON: Final = "ES-6 quiet hours"
RATE_REASON: Final = "the provider's rate limit"
# Named here, not by strftime: the machine's locale does not change what status says.
_WEEKDAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS: Final = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Waiting:
    """The campaign's queued recipients wait until `until` (aware) because of `reason`."""

    until: datetime
    reason: str
    rule: str | None  # the rule that makes it wait, if one does
    queued: int

    def clock_text(self, now: datetime) -> str:
        """ "09:00" today, "Monday 30 November 09:00" on another day (Oslo time)."""
        local, today = self.until.astimezone(OSLO), now.astimezone(OSLO).date()
        hour = f"{local:%H:%M}"
        if local.date() == today:
            return hour
        return f"{_WEEKDAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} {hour}"

    def text(self, now: datetime) -> str:
        """ "waiting until 09:00 (ES-6 quiet hours)"."""
        return f"waiting until {self.clock_text(now)} ({self.reason})"

    def expected_start_text(self) -> str:
        return f"{self.until.astimezone(OSLO):%Y-%m-%d %H:%M} Europe/Oslo"

    def as_dict(self) -> dict[str, Any]:
        """ISO 8601 with the Oslo offset, as every time in JSON."""
        return {
            "until": self.until.astimezone(OSLO).isoformat(),
            "reason": self.reason,
            "rule": self.rule,
            "queued": self.queued,
        }


def _queued(conn: Connection, campaign_id: int) -> int:
    return int(
        conn.execute(
            select(func.count()).where(
                recipients.c.campaign_id == campaign_id, recipients.c.state == QUEUED
            )
        ).scalar_one()
    )


def _aware(moment: datetime) -> datetime:
    # SQLite gives back the UTC time it stored without its offset.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def waiting(conn: Connection, camp: campaign_mod.Campaign, now: datetime) -> Waiting | None:
    """Why and until when the running campaign's queued recipients wait, or None when
    nothing waits (they go as soon as a worker takes their batch)."""
    if camp.state != campaign_mod.RUNNING:
        return None
    queued = _queued(conn, camp.id)
    if not queued:
        return None
    if camp.channel == "sms" and not may_send_sms(now):
        return Waiting(next_opening(now, may_send_sms), ES6_REASON, "ES-6", queued)
    later = conn.execute(
        select(func.min(batches.c.not_before)).where(
            batches.c.campaign_id == camp.id,
            batches.c.state == "waiting",
            batches.c.not_before.is_not(None),
        )
    ).scalar_one()
    if later is not None and _aware(later) > now:
        return Waiting(_aware(later), RATE_REASON, None, queued)
    return None


def listed(conn: Connection, campaign_id: int) -> int:
    """A call campaign's people on its list, not yet handed to the call centre."""
    return int(
        conn.execute(
            select(func.count()).where(
                recipients.c.campaign_id == campaign_id, recipients.c.state == LISTED
            )
        ).scalar_one()
    )
