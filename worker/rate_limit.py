"""A campaign's messages-per-second, held across processes: a log of reservations.

A worker about to send a sub-batch of `n` messages reserves them and sleeps until the
start it is given: the earliest such that

* no window of `WINDOW` seconds holds more than `limit` messages of the campaign's
  reservations, and
* the previous reservation has had its share of the time, `PACE / limit` a message:
  sub-batches are spread out instead of the whole limit going out at the start of every
  window, and the rate stays up to 5 % under the limit.

A reservation counts at its start while its messages are on their way, and at the moment
it was done once its worker comes back for the next one (its sub-batch sent and
recorded: every message reached the provider by then), unless it has left the window
already (a worker that comes back after idling does not hold a window it did not use). So a sub-batch that went out
slowly (a starved process, a slow answer) pushes back the reservation that would share a
provider's second with it, instead of overlapping it: without that, how much one burst's
timing differs from another's had to fit in a fixed margin, and on a loaded machine it
did not (429s from the fake). One round trip per reservation (a Lua script on Redis,
whose clock every worker shares), and no polling.

dramatiq's window limiter (one Redis transaction per message, retried when another
worker's transaction intervenes; a poll every 20 ms when refused) cost more CPU per
message than sending it did at hundreds of messages per second, and counted whole
wall-clock seconds.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from typing import Final, Protocol

import redis

WINDOW: Final = 1.01  # seconds: a provider's second, and a little for the clocks
PACE: Final = 1.05  # seconds a limit's worth of reservations is spread over

# The same computation as `earliest_start`, inside Redis (one script run is atomic). Times
# are milliseconds of Redis's clock (Lua passes numbers on with 14 significant digits: to
# a tenth of a millisecond, well inside the window's 10 ms to spare).
# KEYS: the reservations, the next start the pacing allows, then the sorted sets of the
# caller's previous reservations; ARGV: n, limit, window, pace per message, this
# reservation's member, then the previous reservations' members.
_RESERVE: Final = """
local n, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local window, pace = tonumber(ARGV[3]), tonumber(ARGV[4])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
for i = 3, #KEYS do
  local at = redis.call('ZSCORE', KEYS[i], ARGV[i + 3])
  if at and tonumber(at) > now - window then
    redis.call('ZADD', KEYS[i], now, ARGV[i + 3])
  end
end
local key = KEYS[1]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
local start = math.max(now, tonumber(redis.call('GET', KEYS[2]) or '0'))
local times, counts = {}, {}
for i = 1, #entries, 2 do
  local at = tonumber(entries[i + 1])
  if at > start - window then
    times[#times + 1] = at
    counts[#counts + 1] = tonumber(string.match(entries[i], ':(%d+)$'))
  end
end
local total = n
for i = 1, #counts do total = total + counts[i] end
for i = 1, #times do
  if total <= limit then break end
  start = times[i] + window
  total = total - counts[i]
end
redis.call('ZADD', key, start, ARGV[5])
local keep = math.ceil(start - now + window + 60000)
redis.call('PEXPIRE', key, keep)
redis.call('SET', KEYS[2], tostring(start + n * pace), 'PX', keep)
return tostring(start - now)
"""


def earliest_start(
    counted: Sequence[tuple[float, int]], not_before: float, n: int, limit: int, window: float
) -> float:
    """The earliest start from `not_before` on at which `n` more messages keep every window
    of `window` (half-open) at `limit` or less, given the reservations (time, count) made
    so far, oldest first."""
    start = not_before
    live = [(at, count) for at, count in counted if at > start - window]
    total = n + sum(count for _, count in live)
    for at, count in live:
        if total <= limit:
            break
        start = at + window  # the earliest moment this reservation has left the window
        total -= count
    return start


class Reservations(Protocol):
    def reserve(self, key: str, n: int, limit: int) -> float:
        """Reserve `n` (at most `limit`) messages under `key`; seconds to wait before
        sending them. The calling thread's previous reservations count as done from now."""
        ...


class RedisReservations:
    """Reservations shared by every process on one Redis."""

    def __init__(self, client: redis.Redis, window: float = WINDOW, pace: float = PACE) -> None:
        self.window = window
        self.pace = pace
        self._script = client.register_script(_RESERVE)
        self._mine = threading.local()  # this thread's last reservations: (key, member)

    @classmethod
    def from_url(cls, url: str) -> RedisReservations:
        return cls(redis.Redis.from_url(url))

    def reserve(self, key: str, n: int, limit: int) -> float:
        done: list[tuple[str, str]] = getattr(self._mine, "last", [])
        zset = f"outreach:rate:{key}"
        member = f"{uuid.uuid4().hex}:{n}"
        args: list[str | int | float] = [n, limit, self.window * 1000, self.pace * 1000 / limit]
        waited = self._script(
            keys=[zset, f"{zset}:next", *(k for k, _ in done)],
            args=[*args, member, *(m for _, m in done)],
        )
        self._mine.last = [(zset, member)]
        return max(0.0, float(waited) / 1000)


class LocalReservations:
    """Reservations of one process (the embedded worker, which has no Redis)."""

    def __init__(self, window: float = WINDOW, pace: float = PACE) -> None:
        self.window = window
        self.pace = pace
        self._lock = threading.Lock()
        self._reserved: dict[str, dict[str, tuple[float, int]]] = {}  # key: member: (time, n)
        self._next: dict[str, float] = {}
        self._mine = threading.local()

    def reserve(self, key: str, n: int, limit: int) -> float:
        member = uuid.uuid4().hex
        with self._lock:
            now = time.monotonic()
            for done_key, done_member in getattr(self._mine, "last", []):
                entry = self._reserved.get(done_key, {}).get(done_member)
                if entry is not None and entry[0] > now - self.window:
                    self._reserved[done_key][done_member] = (now, entry[1])
            reserved = {
                m: entry
                for m, entry in self._reserved.get(key, {}).items()
                if entry[0] > now - self.window
            }
            start = earliest_start(
                sorted(reserved.values()), max(now, self._next.get(key, now)), n, limit, self.window
            )
            reserved[member] = (start, n)
            self._reserved[key] = reserved
            self._next[key] = start + n * self.pace / limit
        self._mine.last = [(key, member)]
        return max(0.0, start - now)


def acquire(reservations: Reservations, key: str, count: int, limit: int) -> None:
    """Block until `count` messages under `key` may go (at most `limit`: what one window
    can hold; a throttled sub-batch is far smaller)."""
    if count > limit:
        raise ValueError(f"{count} messages can never go at once under a limit of {limit}")
    time.sleep(reservations.reserve(key, count, limit))
