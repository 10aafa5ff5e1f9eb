"""What a failed HTTP request (`requests`, under both provider SDKs) means for a send.

Only what provably happened before a byte left us (no connection could be made, the
URL is malformed) counts as not sent. A read timeout, a dropped connection or a cut
answer may hide a message the provider accepted: such an outcome is unknown and is
never retried blindly (guarantee 2).
"""

from __future__ import annotations

import errno

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

_NOT_SENT = (
    requests.exceptions.ConnectTimeout,
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
)


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception, its arguments and causes: requests wraps urllib3 wraps the socket."""
    seen: list[BaseException] = []
    stack: list[object] = [exc]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        stack.extend(item.args)
        stack.extend((getattr(item, "reason", None), item.__cause__, item.__context__))
    return seen


def sent_before_failure(exc: requests.RequestException) -> bool:
    """Whether the request may have reached the provider before the failure."""
    if isinstance(exc, _NOT_SENT):
        return False
    for cause in _causes(exc):
        if isinstance(cause, NewConnectionError | ConnectTimeoutError | ConnectionRefusedError):
            return False
        if isinstance(cause, OSError) and cause.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH):
            return False
    return True
