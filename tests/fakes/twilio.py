"""A fake of the Twilio REST API (2010-04-01 Messages) for tests.

Run it in-process (``with FakeTwilio(mps=50) as tw: tw.base_url``) or as a process:
``python -m tests.fakes.twilio --port 0 --mps 50`` prints the port it listens on.
"""

from __future__ import annotations

import base64
import collections
import math
import re
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from email.utils import formatdate
from typing import Any, ClassVar
from urllib.parse import urlencode

from tests.fakes.http import (
    FakeServer,
    Fault,
    Request,
    Response,
    cli_parser,
    machine_clock,
    run_forever,
)
from tests.fakes.spec import FormRequest, TwilioSpecValidator

DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token"
API_VERSION = "2010-04-01"

# code -> (HTTP status, message) as the real API answers them.
ERRORS: dict[int, tuple[int, str]] = {
    20001: (400, "Invalid request: {detail}"),
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource {path} was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    20503: (503, "Service Unavailable"),
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21614: (400, "'To' number {to} is not a valid mobile number"),
}
_STATUS_CODES = {401: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503}

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
_MESSAGE = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages/(?P<sid>[^/]+)\.json$")

_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = set("^{}\\[~]|€\f")


def num_segments(body: str) -> int:
    """How many SMS segments ``body`` takes (GSM-7: 160/153 chars, else UCS-2: 70/67)."""
    if all(c in _GSM7 or c in _GSM7_EXTENDED for c in body):
        units = len(body) + sum(c in _GSM7_EXTENDED for c in body)
        single, multi = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, multi = 70, 67
    return 1 if units <= single else math.ceil(units / multi)


def error_body(code: int, **details: str) -> tuple[int, dict[str, Any]]:
    status, template = ERRORS[code]
    return status, {
        "code": code,
        "message": template.format_map(collections.defaultdict(str, details)),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class FakeTwilio(FakeServer):
    """A fake Twilio: ``Messages`` of API 2010-04-01, with state, limits and faults.

    Every request is checked against ``twilio_api_v2010.json`` with openapi-core; one the
    spec refuses gets a 400 and lands in :attr:`spec_violations`. Requests need HTTP Basic
    auth with ``account_sid``/``auth_token``. Message creations beyond ``mps`` per second
    (a sliding one-second window) get 429 with code 20429, counted in :attr:`rate_limited`.
    Sending to a number of :attr:`opted_out` gets 400 with code 21610. Created messages are
    appended to :attr:`messages` with monotonic and wall-clock arrival stamps; a message's
    ``date_created`` is on ``clock``, the provider's clock (see :class:`FakeServer`).
    ``DELETE .../Messages/{Sid}.json`` (204) removes a message from :attr:`messages` (a GET
    of it is then 404) and appends its SID to :attr:`deleted`; :meth:`fail_deletes` makes
    deletions fail.
    """

    name: ClassVar[str] = "FakeTwilio"

    def __init__(
        self,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        mps: float | None = None,
        opted_out: Sequence[str] = (),
        port: int = 0,
        strict: bool = True,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(port=port, strict=strict, clock=clock)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.mps = mps
        self.opted_out: set[str] = set(opted_out)
        self.messages: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.rate_limited = 0
        self._window: collections.deque[float] = collections.deque()
        self._validator = TwilioSpecValidator()
        self._warm_up()

    # -- test API -------------------------------------------------------------------

    def opt_out(self, number: str) -> None:
        """The recipient replied STOP: sending to ``number`` now fails with 21610."""
        with self.lock:
            self.opted_out.add(number)

    def opt_in(self, number: str) -> None:
        with self.lock:
            self.opted_out.discard(number)

    def error_for(self, number: str, code: int, n: int | None = None) -> Fault:
        """Answer error ``code`` (e.g. 21211, 21614, 21610) to messages for ``number``."""
        if code not in ERRORS:
            raise ValueError(f"unknown Twilio error code {code}; known: {sorted(ERRORS)}")
        return self.add_fault("error", code=code, target=number, remaining=n)

    def error_next(self, code: int, n: int = 1) -> Fault:
        """Answer error ``code`` to the next ``n`` message creations, whatever the number."""
        if code not in ERRORS:
            raise ValueError(f"unknown Twilio error code {code}; known: {sorted(ERRORS)}")
        return self.add_fault("error", code=code, remaining=n, method="POST", path="/Messages.json")

    def fail_deletes(self, n: int | None = 1, status: int = 503) -> Fault:
        """Answer ``status`` to the next ``n`` message deletions (``None``: until cleared)."""
        return self.fail_next(n, status, method="DELETE", path="/Messages/")

    def message(self, sid: str) -> dict[str, Any] | None:
        with self.lock:
            return next((dict(m) for m in self.messages if m["sid"] == sid), None)

    def messages_to(self, number: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(m) for m in self.messages if m["to"] == number]

    def count_by_recipient(self) -> collections.Counter[str]:
        """How many messages each number was sent (``> 1`` means a duplicate)."""
        with self.lock:
            return collections.Counter(m["to"] for m in self.messages)

    def duplicates(self) -> dict[str, int]:
        return {to: n for to, n in self.count_by_recipient().items() if n > 1}

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.messages.clear()
            self.deleted.clear()
            self.rate_limited = 0
            self._window.clear()

    def state(self) -> dict[str, Any]:
        state = super().state()
        with self.lock:
            state.update(
                messages=[dict(m) for m in self.messages],
                deleted=list(self.deleted),
                opted_out=sorted(self.opted_out),
                rate_limited=self.rate_limited,
                mps=self.mps,
                account_sid=self.account_sid,
            )
        return state

    def admin_actions(self) -> dict[str, Callable[..., Any]]:
        return {
            **super().admin_actions(),
            "opt_out": self.opt_out,
            "opt_in": self.opt_in,
            "error_for": lambda **kw: self.error_for(**kw).as_dict(),
            "error_next": lambda **kw: self.error_next(**kw).as_dict(),
            "fail_deletes": lambda **kw: self.fail_deletes(**kw).as_dict(),
        }

    def _warm_up(self) -> None:
        """Check one message creation against the spec now: openapi-core builds what it
        needs for an operation at its first request (tens of milliseconds, which would
        delay the first messages of a run and bunch them with the next ones)."""
        token = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        form = {"To": "+15005550006", "Body": "warm-up", "MessagingServiceSid": "MG" + "0" * 32}
        errors, _ = self._validator.check(
            FormRequest(
                method="POST",
                path=f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json",
                query=[],
                headers={"authorization": f"Basic {token}"},
                body=urlencode(form).encode(),
                content_type="application/x-www-form-urlencoded",
            )
        )
        assert not errors, errors

    # -- HTTP -----------------------------------------------------------------------

    def _error(self, request: Request, code: int, **details: str) -> Response:
        status, body = error_body(code, **details)
        request.note(error_code=code)
        return Response(status, body)

    def handle(self, request: Request) -> Response:
        if request.basic_auth() != (self.account_sid, self.auth_token):
            return self._error(request, 20003)
        spec_errors, unknown_path = self._validator.check(
            FormRequest(
                method=request.method,
                path=request.path,
                query=[(k, v) for k, values in request.query.items() for v in values],
                headers=request.headers,
                body=request.body or None,
                content_type=request.content_type or "application/x-www-form-urlencoded",
            )
        )
        form = {k: v[-1] for k, v in request.form().items()} if request.method == "POST" else {}
        if "To" in form:
            request.note(to=form["To"])
        if spec_errors:
            self.record_spec_violation(request, spec_errors)
            if unknown_path:
                return self._error(request, 20404, path=request.path)
            if request.method == "POST" and not form.get("To") and _MESSAGES.match(request.path):
                return self._error(request, 21604)
            return self._error(request, 20001, detail="; ".join(spec_errors))

        messages, message = _MESSAGES.match(request.path), _MESSAGE.match(request.path)
        match = messages or message
        if match is None or match["account"] != self.account_sid:
            return self._error(request, 20404, path=request.path)
        creating = messages is not None and request.method == "POST"
        if creating and self._rate_limited():
            return self._error(request, 20429)
        fault = self.apply_faults(request, target=form["To"] if creating else None)
        if fault is not None:
            return self._fault_response(request, fault, form.get("To", ""))
        if creating:
            return self._create(request, form)
        if message and request.method == "GET":
            return self._fetch(request, message["sid"])
        if message and request.method == "DELETE":
            return self._delete(request, message["sid"])
        if messages and request.method == "GET":
            return self._list(request)
        return Response(501, {"code": 0, "message": f"{self.name} does not implement this"})

    def _fault_response(self, request: Request, fault: Fault, to: str) -> Response:
        if fault.kind == "drop":
            return Response.dropped()
        if fault.kind == "error":
            return self._error(request, fault.code or 20500, to=to)
        code = _STATUS_CODES.get(fault.status)
        if code is None:
            return Response(fault.status, {"code": 0, "message": "injected fault"})
        return self._error(request, code)

    def _rate_limited(self) -> bool:
        if self.mps is None:
            return False
        now = time.monotonic()
        with self.lock:
            while self._window and now - self._window[0] >= 1.0:
                self._window.popleft()
            if len(self._window) >= self.mps:
                self.rate_limited += 1
                return True
            self._window.append(now)
            return False

    def _create(self, request: Request, form: dict[str, str]) -> Response:
        to = form["To"]
        number = to.removeprefix("whatsapp:")
        if not _E164.match(number):
            return self._error(request, 21211, to=to)
        with self.lock:
            opted_out = to in self.opted_out or number in self.opted_out
        if opted_out:
            return self._error(request, 21610)
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return self._error(request, 21603)
        body = form.get("Body", "")
        if not (body or form.get("MediaUrl") or form.get("ContentSid")):
            return self._error(request, 21602)
        return Response(201, self._record(request, form))

    def _record(self, request: Request, form: dict[str, str]) -> dict[str, Any]:
        sid = "SM" + uuid.uuid4().hex
        service = form.get("MessagingServiceSid")
        body = form.get("Body", "")
        now = formatdate(self.clock().timestamp())  # RFC 2822, as Twilio's date fields
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json"
        resource = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": service,
            "num_media": "0",
            # Through a Messaging Service the sender (and so the encoding) is not chosen yet.
            "num_segments": "0" if service else str(num_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if service else "queued",
            "subresource_uris": {"media": uri.removesuffix(".json") + "/Media.json"},
            "to": form["To"],
            "uri": uri,
        }
        entry = request.entry
        record = {
            "seq": entry["seq"],
            "sid": sid,
            "to": form["To"],
            "from": form.get("From"),
            "messaging_service_sid": service,
            "body": body,
            "segments": num_segments(body),
            "status_callback": form.get("StatusCallback"),
            "t_monotonic": entry["t_monotonic"],
            "t_wall": entry["t_wall"],
            "resource": resource,
        }
        with self.lock:
            self.messages.append(record)
        request.note(sid=sid)
        return resource

    def _fetch(self, request: Request, sid: str) -> Response:
        with self.lock:
            found = next((m["resource"] for m in self.messages if m["sid"] == sid), None)
        if found is None:
            return self._error(request, 20404, path=request.path)
        return Response(200, found)

    def _delete(self, request: Request, sid: str) -> Response:
        with self.lock:
            found = next((m for m in self.messages if m["sid"] == sid), None)
            if found is not None:
                self.messages.remove(found)
                self.deleted.append(sid)
        if found is None:
            return self._error(request, 20404, path=request.path)
        return Response(204)

    def _list(self, request: Request) -> Response:
        query = {k: v[-1] for k, v in request.query.items()}
        page = int(query.get("Page", "0"))
        size = min(int(query.get("PageSize", "50")), 1000)
        with self.lock:
            found = [
                m["resource"]
                for m in reversed(self.messages)  # newest first, like the real API
                if m["to"] == query.get("To", m["to"]) and m["from"] == query.get("From", m["from"])
            ]
        chunk = found[page * size : (page + 1) * size]
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

        filters: dict[str, str] = {k: query[k] for k in ("To", "From") if k in query}

        def page_uri(number: int, **extra: str) -> str:
            params: dict[str, str | int] = {"PageSize": size, "Page": number, **filters, **extra}
            return f"{base}?{urlencode(params)}"

        has_next = (page + 1) * size < len(found)
        return Response(
            200,
            {
                "messages": chunk,
                "end": page * size + max(len(chunk) - 1, 0),
                "first_page_uri": page_uri(0),
                "next_page_uri": page_uri(page + 1, PageToken=f"PA{page + 1}")
                if has_next
                else None,
                "page": page,
                "page_size": size,
                "previous_page_uri": page_uri(page - 1) if page > 0 else None,
                "start": page * size,
                "uri": page_uri(page),
            },
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = cli_parser(FakeTwilio.name)
    parser.add_argument("--mps", type=float, default=None, help="messages per second allowed")
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    parser.add_argument("--opted-out", action="append", default=[], metavar="NUMBER")
    args = parser.parse_args(argv)
    run_forever(
        FakeTwilio(
            account_sid=args.account_sid,
            auth_token=args.auth_token,
            mps=args.mps,
            opted_out=args.opted_out,
            port=args.port,
            clock=machine_clock,
        )
    )


if __name__ == "__main__":
    main()
