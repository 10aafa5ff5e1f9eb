"""The `mailchimp-marketing` SDK behind a connection gate, its errors mapped to ours.

Mailchimp allows 10 simultaneous connections per account and answers 429 beyond.
Every SDK call here holds a slot of a gate first: by default a semaphore shared by
every channel of the process with the same API key; the composition root can pass
one that holds across processes (Redis). The SDK opens one connection per call, so
slots held bound connections.

Errors: 429 is `RateLimited`; 5xx and failed connections are transient; other 4xx are
permanent. A failure after the request may have reached Mailchimp is `OutcomeUnknown`
(the caller decides what that means: harmless for an upsert, to be checked for a send).
Messages carry Mailchimp's title, never its detail (which can quote an address, GD-4).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Final, TypeVar

import mailchimp_marketing
import requests
from mailchimp_marketing.api_client import ApiClientError

from campaigns.channels.base import OutcomeUnknown
from campaigns.channels.http import sent_before_failure
from suppression.errors import ChannelError, ConfigurationError, RateLimited

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_MAX_CONNECTIONS: Final = 8  # of Mailchimp's 10: headroom for anything else on the key
MAILCHIMP_LIMIT: Final = 10
DEFAULT_RETRY_AFTER: Final = 1.0

Gate = Callable[[], AbstractContextManager[object]]

_gates: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_gates_lock = threading.Lock()


def process_gate(api_key: str, slots: int) -> Gate:
    """A gate shared by every channel of this process using `api_key`."""
    with _gates_lock:
        semaphore = _gates.setdefault((api_key, slots), threading.BoundedSemaphore(slots))

    @contextmanager
    def hold() -> Iterator[object]:
        with semaphore:
            yield None

    return hold


def _not_sent(exc: BaseException) -> bool:
    return isinstance(exc, requests.RequestException) and not sent_before_failure(exc)


def _problem_title(error: ApiClientError) -> str:
    text = error.text
    try:
        body = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return "error"
    title = body.get("title") if isinstance(body, dict) else None
    return str(title)[:80] if title else "error"


def map_error(error: ApiClientError) -> ChannelError:
    status = error.status_code
    if status is None:
        # The SDK wraps the transport's exception in `text`.
        cause = error.text
        kind = type(cause).__name__
        if isinstance(cause, BaseException) and _not_sent(cause):
            return ChannelError(f"mailchimp: could not connect ({kind})", code="connect")
        return OutcomeUnknown(
            f"mailchimp: no answer after the request was sent ({kind})", code="no_answer"
        )
    if status == 429:
        return RateLimited(DEFAULT_RETRY_AFTER)
    label = f"http {status}"
    title = _problem_title(error)
    if status >= 500:
        return ChannelError(f"mailchimp {label}: {title}", code=str(status))
    return ChannelError(f"mailchimp {label}: {title}", permanent=True, code=str(status))


class MailchimpApi:
    """One audience's SDK client with timeouts, a connection gate and mapped errors."""

    def __init__(
        self,
        api_key: str,
        server: str,
        base_url: str | None = None,
        timeout: float = 10,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        gate: Gate | None = None,
    ) -> None:
        if not 1 <= max_connections <= MAILCHIMP_LIMIT:
            raise ConfigurationError(
                "MAILCHIMP_MAX_CONNECTIONS", f"must be between 1 and {MAILCHIMP_LIMIT}"
            )
        if timeout <= 0:
            raise ConfigurationError("MAILCHIMP_TIMEOUT", "must be a positive number of seconds")
        client = mailchimp_marketing.Client()
        # The SDK passes `timeout` to requests for every call (its default is 120 s).
        client.set_config({"api_key": api_key, "server": server, "timeout": timeout})
        if base_url:
            host = base_url.rstrip("/")
            client.api_client.host = host if host.endswith("/3.0") else host + "/3.0"
            # The SDK replaces the text "server" anywhere in the URL with the data centre.
            client.api_client.server = ""
        self.client: Any = client
        self.max_connections = max_connections
        self.gate = gate or process_gate(api_key, max_connections)

    def call(self, operation: Callable[..., T], *args: Any) -> T:
        """One SDK call (e.g. `api.call(api.client.lists.get_list, list_id)`)."""
        with self.gate():
            try:
                return operation(*args)
            except ApiClientError as error:
                raise map_error(error) from None

    def map(self, function: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """`function` over `items` on at most `max_connections` threads, results in order;
        the first error is raised after every started call has finished."""
        work = list(items)
        if len(work) <= 1:
            return [function(item) for item in work]
        with ThreadPoolExecutor(max_workers=min(self.max_connections, len(work))) as pool:
            return list(pool.map(function, work))


def with_retries(
    step: Callable[[], T],
    attempts: int = 4,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run an idempotent step again after transient errors (rate limits included)."""
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except ChannelError as exc:
            if exc.permanent or attempt == attempts:
                raise
            wait = exc.retry_after if isinstance(exc, RateLimited) else backoff * 2 ** (attempt - 1)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover
