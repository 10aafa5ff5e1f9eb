"""The web app: unsubscribe pages and provider webhooks (`outreach serve`).

Handlers are thin: they read the request, call `campaigns.optouts`, and render. The
app sets no cookies anywhere, keeps pages out of caches and search engines, and
answers 503 (never 200) when the database cannot store what was asked. Every absolute
URL it answers with is built from OUTREACH_PUBLIC_URL, never from the request's Host
header (which anyone can forge, making our link a redirect to their site).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import anyio.to_thread
from babel.support import Translations
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker import db
from worker.context import Context
from worker.web import i18n

log = logging.getLogger(__name__)
T = TypeVar("T")

# Handlers that run at once in one worker process, and database connections it holds:
# one each, so that no request waits for a connection and none is opened per request.
WEB_THREADS = 16

RETRY_AFTER_SECONDS = "30"
_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-robots-tag", b"noindex, nofollow"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        b"base-uri 'none'; frame-ancestors 'none'",
    ),
]


def web_engine(ctx: Context) -> Engine:
    """The web process's engine: a pool of WEB_THREADS connections kept open.

    No pre-ping on checkout (a round trip per request); a connection found dead is
    retried once instead (`Web.db`), which is safe because every database call of the
    web app is idempotent.
    """
    url = ctx.settings.sqlalchemy_url
    if url.startswith("sqlite"):
        return db.engine_for(url, pool_size=WEB_THREADS, max_overflow=0)
    return create_engine(
        url,
        pool_size=WEB_THREADS,
        max_overflow=0,
        pool_timeout=10,
        connect_args={"connect_timeout": 5},
    )


@dataclass
class Web:
    """What the handlers share: the process context and the rendering machinery."""

    ctx: Context
    engine: Engine
    envs: dict[str, Environment]
    translations: dict[str, Translations]

    def db(self, call: Callable[..., T], *args: Any) -> T:
        """`call(engine, hasher, *args)`, once more if the pool handed out a connection
        the database had dropped (a restart, a failover): the pool then reconnects."""
        try:
            return call(self.engine, self.ctx.hasher, *args)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            return call(self.engine, self.ctx.hasher, *args)

    def gettext(self, lang: str, message: str) -> str:
        return str(self.translations[lang].gettext(message))

    def page(self, lang: str, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        settings = self.ctx.settings
        body = (
            self.envs[lang]
            .get_template(template)
            .render(
                lang=lang,
                org=settings.organisation_name,
                org_number=settings.organisation_number,
                **values,
            )
        )
        return HTMLResponse(body, status_code=status_code, headers={"Content-Language": lang})

    def not_found(self, lang: str) -> HTMLResponse:
        """The one 404 page: says nothing about whether anything exists."""
        return self.page(lang, "not_found.html", 404)

    def unavailable(self, lang: str) -> HTMLResponse:
        response = self.page(lang, "unavailable.html", 503)
        response.headers["Retry-After"] = RETRY_AFTER_SECONDS
        return response


def public_url(web: Web, path: str, query: str = "") -> str:
    """An absolute URL of this app: OUTREACH_PUBLIC_URL, then `path` (the route's path)."""
    url = web.ctx.settings.public_url.rstrip("/") + quote(path, safe="/:@!$&'()*+,;=-._~")
    return f"{url}?{query}" if query else url


def _slash_redirect(request: Request) -> Response | None:
    """Starlette's redirect to the same path with or without its trailing slash, but to
    the public URL: Starlette builds it from the Host header."""
    path = request.scope["path"]
    root = request.scope.get("root_path", "")
    if path in ("/", root, root + "/"):
        return None
    other = path.rstrip("/") if path.endswith("/") else path + "/"
    scope = {**request.scope, "path": other}
    if not any(route.matches(scope)[0] is not Match.NONE for route in request.app.router.routes):
        return None
    route_path = other[len(root) :] if root and other.startswith(root + "/") else other
    query = request.scope.get("query_string", b"").decode("latin-1")
    return RedirectResponse(public_url(web_of(request), route_path, query), 307)


def web_of(request: Request) -> Web:
    web: Web = request.app.state.web
    return web


def language_of(request: Request) -> str:
    return i18n.negotiate(request.query_params.get("lang"), request.headers.get("accept-language"))


class _SecurityHeaders:
    """Adds the same protective headers to every response (pure ASGI: no per-request task)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in _HEADERS if k not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(ctx: Context) -> FastAPI:
    """The ASGI app over one process context (settings, engine, hasher)."""
    from worker.web import pages, webhooks

    engine = web_engine(ctx)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = WEB_THREADS
        yield
        engine.dispose()

    app = FastAPI(
        title="outreach",
        summary="Unsubscribe pages and provider webhooks",
        version="1",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        redirect_slashes=False,  # `_slash_redirect` instead, to the public URL
    )
    translations = {lang: i18n.compile_catalog(lang) for lang in i18n.LANGUAGES}
    app.state.web = Web(ctx=ctx, engine=engine, envs=i18n.environments(), translations=translations)
    app.include_router(pages.router)
    app.include_router(webhooks.router)

    @app.get("/healthz", summary="Liveness: the database and Redis answer")
    async def healthz() -> JSONResponse:
        def ping(engine: Engine, _hasher: object) -> None:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        await run_in_threadpool(app.state.web.db, ping)
        if ctx.settings.redis_url:
            try:
                await run_in_threadpool(_ping_redis, ctx.settings.redis_url)
            except Exception as exc:  # any failure to answer is "redis down" here
                log.warning("healthz: redis unavailable: %s", type(exc).__name__)
                return JSONResponse({"status": "unavailable", "failed": "redis"}, 503)
            return JSONResponse({"status": "ok", "database": "ok", "redis": "ok"})
        return JSONResponse({"status": "ok", "database": "ok", "redis": "not configured"})

    @app.get("/metrics", summary="Prometheus metrics of this web process", include_in_schema=False)
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # The store is unreachable or overloaded (connection refused or lost, pool exhausted).
    # Other database errors are bugs and stay 500s, where they are seen.
    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeout)
    async def database_unavailable(request: Request, exc: Exception) -> Response:
        # Guarantee 3: when the store fails, say so; nothing here claims a stored no.
        route = getattr(request.scope.get("route"), "path", "?")  # the pattern, not the token
        log.warning("database unavailable: %s on %s", type(exc).__name__, route)
        return web_of(request).unavailable(language_of(request))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            moved = _slash_redirect(request)
            return moved or web_of(request).not_found(language_of(request))
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)

    app.add_middleware(_SecurityHeaders)
    app.add_middleware(_Metrics)
    return app


def _ping_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


class _Metrics:
    """Request counts and latencies by route pattern (never the path: it holds tokens)."""

    def __init__(self, app: Any) -> None:
        from prometheus_client import Counter, Histogram

        self.app = app
        self.requests = _metric(
            Counter, "outreach_http_requests_total", "HTTP requests", ["route", "method", "status"]
        )
        self.latency = _metric(
            Histogram, "outreach_http_request_seconds", "HTTP request latency", ["route"]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        import time

        started = time.perf_counter()
        status = {"code": 500}

        async def record(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.requests.labels(route, scope["method"], str(status["code"])).inc()
            self.latency.labels(route).observe(time.perf_counter() - started)


_METRICS: dict[str, Any] = {}


def _metric(kind: Any, name: str, doc: str, labels: list[str]) -> Any:
    # One collector per name per process, however many apps the process builds (tests).
    if name not in _METRICS:
        _METRICS[name] = kind(name, doc, labels)
    return _METRICS[name]


def app_from_environment() -> FastAPI:
    """The app factory `outreach serve` gives uvicorn: settings from the environment."""
    app = create_app(Context.load())
    # What is loaded by now lives as long as the worker process: keep it out of the
    # collector's full passes, which otherwise stall requests for milliseconds.
    gc.collect()
    gc.freeze()
    return app
