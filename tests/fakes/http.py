"""The threaded loopback HTTP server shared by the provider fakes.

A fake is a :class:`FakeServer` subclass that implements :meth:`FakeServer.handle`. The base
class owns the server thread, the append-only request log, fault injection, the lists of
spec violations and contract violations, and the JSON admin endpoints under ``/_fake/``.

Two kinds of time, kept apart on purpose:
- the provider's own clock (``clock``), which stamps the resources a fake creates (a
  member's ``last_changed``, a message's ``date_created``): in a test it is the test's
  clock (``tests.clock``; the fixtures pass the ``clock`` fixture), so a travelled suite
  sees provider resources dated at its instant; a fake run as a process of its own
  (``python -m tests.fakes.<provider>``) is the provider for other processes and uses the
  machine's clock;
- arrival stamps of the request log (``t_monotonic``, ``t_wall``): when a request reached
  the fake, measured, never simulated; ``t_wall`` is compared with other processes'
  wall-clock times (tests/e2e/evidence.py), so it is the machine's clock whatever the test
  clock says.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit

from tests.clock import TestClock

ADMIN_PREFIX = "/_fake/"
LOOPBACK = "127.0.0.1"


def machine_clock() -> datetime:
    """The provider clock of a fake run as a process of its own (each fake's ``main``)."""
    return datetime.now(UTC)  # wall-clock: a fake in its own process is the provider's clock


@dataclass
class Request:
    """An API request as the fakes see it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    entry: dict[str, Any]  # this request's entry in the request log
    lock: threading.RLock | None = None  # the fake's lock, guarding the log

    def note(self, **fields: Any) -> None:
        """Add fields to this request's log entry."""
        with self.lock or contextlib.nullcontext():
            self.entry.update(fields)

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    @property
    def content_type(self) -> str:
        return self.header("content-type")

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode("utf-8", errors="replace"), keep_blank_values=True)

    def json(self) -> Any:
        text = self.body.decode("utf-8", errors="replace").strip()
        return json.loads(text) if text else None

    def basic_auth(self) -> tuple[str, str] | None:
        scheme, _, token = self.header("authorization").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(token).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return (user, password) if sep else None


@dataclass
class Response:
    """What a fake answers; ``drop`` closes the connection without any answer."""

    status: int
    body: Any = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False

    @classmethod
    def dropped(cls) -> Response:
        return cls(status=0, drop=True)


@dataclass
class Fault:
    """An injected fault.

    ``kind`` is ``"status"`` (answer ``status`` with the provider's error body), ``"drop"``
    (close the connection without answering), ``"delay"`` (wait ``delay`` seconds, then go
    on) or ``"error"`` (answer the provider error ``code``, e.g. Twilio's 21610).
    ``remaining`` is how many more matching requests it applies to (``None``: until
    cleared). ``target`` restricts it to one recipient (phone number or email address),
    ``path`` to requests whose path contains that text, ``method`` to one HTTP method.
    """

    kind: str
    status: int = 500
    delay: float = 0.0
    code: int | None = None
    remaining: int | None = 1
    target: str | None = None
    path: str | None = None
    method: str | None = None
    hits: int = 0

    KINDS: ClassVar[tuple[str, ...]] = ("status", "drop", "delay", "error")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {self.KINDS}")
        if self.kind == "error" and self.code is None:
            raise ValueError("an 'error' fault needs a code")
        if self.remaining is not None and self.remaining < 1:
            raise ValueError("remaining must be at least 1 (or None for 'until cleared')")

    def matches(self, method: str, path: str, target: str | None) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self.path is not None and self.path not in path:
            return False
        return self.target is None or self.target == target

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # Keep-alive, as the real APIs: the SDKs' sessions reuse one connection for many
    # requests (a connection, and a server thread, per request cost more CPU than a fake's
    # whole handling of the request). A client asking for `Connection: close` (or speaking
    # HTTP/1.0) still gets one request per connection.
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: with Nagle's algorithm the body of a kept-alive
    # connection would wait for the client's delayed ACK of the headers (40 ms).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self.server.fake._serve(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet; the fake has its own request log."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # bursts of concurrent clients must not overflow the backlog
    fake: FakeServer

    def __init__(self, address: tuple[str, int], handler: type[_Handler]) -> None:
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End the kept-alive connections: a stopped fake answers nothing more."""
        with self.connections_lock:
            connections = list(self.open_connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class FakeServer:
    """Base class of the provider fakes: a threaded HTTP server on 127.0.0.1.

    Use it as a context manager (``with FakeTwilio() as fake: fake.base_url``), or call
    :meth:`start` and :meth:`stop`. Leaving the ``with`` block (without an exception in
    flight) raises ``AssertionError`` if requests broke the provider's spec
    (:attr:`spec_violations`) or, with ``strict=True``, broke the product's contract
    (:attr:`violations`) — unless the test took them with :meth:`take_spec_violations`,
    :meth:`take_violations` or :meth:`expect_spec_violations`.

    ``clock`` is the provider's own clock, which stamps the resources the fake creates (by
    default a :class:`tests.clock.TestClock` standing at the suite's instant). Every API
    request is appended to :attr:`requests` with monotonic and wall-clock arrival stamps.
    Admin endpoints: ``GET /_fake/state`` (JSON snapshot), ``POST /_fake/<action>`` with a
    JSON object of keyword arguments, for the actions listed by :meth:`admin_actions`
    (``faults``, ``clear_faults``, ``reset``, ``take_spec_violations``, ``take_violations``
    and the provider's own).
    """

    name: ClassVar[str] = "fake"

    def __init__(
        self, *, port: int = 0, strict: bool = True, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.strict = strict
        self.clock: Callable[[], datetime] = clock or TestClock()
        self._requested_port = port
        self.lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[dict[str, Any]] = []
        self.spec_violations: list[dict[str, Any]] = []
        self.violations: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self._seq = 0

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"{self.name} is already running")
        server = _Server((LOOPBACK, self._requested_port), _Handler)
        server.fake = self
        self._stopping.clear()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.name = f"{self.name}-{self.port}"
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes requests sleeping in a delay fault
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc_type is None:
            self.assert_clean()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    # -- violations -----------------------------------------------------------------

    def record_spec_violation(self, request: Request, errors: Sequence[str]) -> None:
        with self.lock:
            self.spec_violations.append(
                {
                    "seq": request.entry["seq"],
                    "method": request.method,
                    "path": request.path,
                    "errors": list(errors),
                    "body": request.body.decode("utf-8", errors="replace")[:2000],
                    "t_wall": request.entry["t_wall"],  # the request's arrival
                }
            )
            request.entry["spec_errors"] = list(errors)

    def record_violation(self, kind: str, **details: Any) -> None:
        with self.lock:
            seen = time.time()  # wall-clock: when it was seen, as the request log's t_wall
            self.violations.append({"kind": kind, "t_wall": seen, **details})

    def take_spec_violations(self) -> list[dict[str, Any]]:
        """Return the spec violations recorded so far and forget them."""
        with self.lock:
            taken, self.spec_violations = self.spec_violations, []
        return taken

    def take_violations(self) -> list[dict[str, Any]]:
        """Return the contract violations recorded so far and forget them."""
        with self.lock:
            taken, self.violations = self.violations, []
        return taken

    @contextlib.contextmanager
    def expect_spec_violations(self, count: int | None = None) -> Iterator[list[dict[str, Any]]]:
        """Expect the block to cause spec violations (``count`` of them, or at least one).

        Yields a list that is filled with the violations when the block ends; they are
        then no longer reported at teardown.
        """
        with self.lock:
            before = len(self.spec_violations)
        got: list[dict[str, Any]] = []
        yield got
        with self.lock:
            got.extend(self.spec_violations[before:])
            del self.spec_violations[before:]
        if count is None and not got:
            raise AssertionError(f"expected {self.name} to record a spec violation; none was")
        if count is not None and len(got) != count:
            raise AssertionError(f"expected {count} spec violation(s), got {len(got)}: {got}")

    def assert_clean(self) -> None:
        """Raise ``AssertionError`` if spec (or, when strict, contract) violations remain."""
        with self.lock:
            problems = [f"spec violation: {v}" for v in self.spec_violations]
            if self.strict:
                problems += [f"contract violation: {v}" for v in self.violations]
        if problems:
            raise AssertionError(
                f"{self.name} recorded {len(problems)} problem(s):\n" + "\n".join(problems)
            )

    # -- faults ---------------------------------------------------------------------

    def add_fault(self, kind: str, **options: Any) -> Fault:
        fault = Fault(kind=kind, **options)
        with self.lock:
            self.faults.append(fault)
        return fault

    def fail_next(self, n: int | None = 1, status: int = 500, **match: Any) -> Fault:
        """Answer the next ``n`` matching requests with ``status`` (a 5xx by default)."""
        return self.add_fault("status", status=status, remaining=n, **match)

    def drop_next(self, n: int | None = 1, **match: Any) -> Fault:
        """Close the connection of the next ``n`` matching requests without answering."""
        return self.add_fault("drop", remaining=n, **match)

    def delay_next(self, seconds: float, n: int | None = 1, **match: Any) -> Fault:
        """Make the next ``n`` matching requests wait ``seconds`` before being handled."""
        return self.add_fault("delay", delay=seconds, remaining=n, **match)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def apply_faults(self, request: Request, target: str | None = None) -> Fault | None:
        """Sleep for matching delay faults; return the first matching terminal fault."""
        delay = 0.0
        terminal: Fault | None = None
        with self.lock:
            for fault in self.faults:
                if not fault.matches(request.method, request.path, target):
                    continue
                if fault.kind == "delay":
                    delay += fault.delay
                elif terminal is None:
                    terminal = fault
                else:
                    continue
                fault.hits += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
            self.faults = [f for f in self.faults if f.remaining is None or f.remaining > 0]
        if delay:
            request.note(delayed=delay)
            self._stopping.wait(delay)
        if terminal is not None:
            request.note(fault=terminal.kind)
        return terminal

    # -- state ----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything recorded and every fault (the configuration stays)."""
        with self.lock:
            self.requests.clear()
            self.spec_violations.clear()
            self.violations.clear()
            self.faults.clear()

    def state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot of what the fake recorded."""
        with self.lock:
            return copy.deepcopy(
                {
                    "requests": self.requests,
                    "spec_violations": self.spec_violations,
                    "violations": self.violations,
                    "faults": [f.as_dict() for f in self.faults],
                }
            )

    def admin_actions(self) -> dict[str, Callable[..., Any]]:
        """The actions available as ``POST /_fake/<name>`` (JSON body = keyword args)."""
        return {
            "faults": lambda **kw: self.add_fault(**kw).as_dict(),
            "clear_faults": self.clear_faults,
            "reset": self.reset,
            "take_spec_violations": self.take_spec_violations,
            "take_violations": self.take_violations,
        }

    # -- provider hooks -------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    # -- plumbing -------------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        if url.path.startswith(ADMIN_PREFIX):
            self._write(handler, self._admin(handler.command, url.path, body))
            return
        now_mono = time.monotonic()
        now_wall = time.time()  # wall-clock: arrival stamp, compared across processes (e2e)
        with self.lock:
            self._seq += 1
            entry: dict[str, Any] = {
                "seq": self._seq,
                "t_monotonic": now_mono,
                "t_wall": now_wall,
                "method": handler.command,
                "path": url.path,
                "query": url.query,
                "status": None,
            }
            self.requests.append(entry)
        request = Request(
            method=handler.command,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers=headers,
            body=body,
            entry=entry,
            lock=self.lock,
        )
        try:
            response = self.handle(request)
        except Exception as exc:  # a bug in the fake: answer 500 and keep serving
            request.note(exception=repr(exc))
            response = Response(500, {"error": f"{self.name} crashed: {exc!r}"})
        with self.lock:
            entry["status"] = "dropped" if response.drop else response.status
            entry["t_done_monotonic"] = time.monotonic()
        self._write(handler, response)

    def _admin(self, method: str, path: str, raw: bytes) -> Response:
        name = path[len(ADMIN_PREFIX) :].strip("/")
        if method == "GET" and name == "state":
            return Response(200, self.state())
        action = self.admin_actions().get(name)
        if method != "POST" or action is None:
            return Response(404, {"error": f"unknown admin endpoint {method} {path}"})
        try:
            kwargs = json.loads(raw) if raw.strip() else {}
            if not isinstance(kwargs, dict):
                raise TypeError("the body must be a JSON object of keyword arguments")
            result = action(**kwargs)
        except Exception as exc:  # a bad admin call must not kill the server thread
            return Response(400, {"error": f"{type(exc).__name__}: {exc}"})
        return Response(200, {"result": result})

    @staticmethod
    def _write(handler: _Handler, response: Response) -> None:
        if response.drop:
            handler.close_connection = True
            return  # the server closes the socket without a byte of answer
        if response.body is None:
            payload = b""
        elif isinstance(response.body, bytes):
            payload = response.body
        else:
            payload = json.dumps(response.body).encode("utf-8")
        try:
            handler.send_response(response.status)
            if payload or response.status not in (204, 304):
                handler.send_header("Content-Type", response.content_type)
            handler.send_header("Content-Length", str(len(payload)))
            for name, value in response.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. its timeout expired during a delay fault).
            handler.close_connection = True


def cli_parser(name: str) -> argparse.ArgumentParser:
    """The command line of ``python -m tests.fakes.<provider>``; add provider options to it."""
    parser = argparse.ArgumentParser(description=f"Run the {name} fake on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks one")
    return parser


def run_forever(fake: FakeServer) -> None:
    """Serve in the foreground until SIGTERM or SIGINT; print the port on the first line.

    Violations are not raised here: the test in the other process reads them from
    ``GET /_fake/state``.
    """
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    fake.start()
    try:
        print(fake.port, flush=True)
        while not done.wait(0.2):
            pass
    finally:
        fake.stop()
