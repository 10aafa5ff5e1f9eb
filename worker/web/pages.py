"""The unsubscribe link: GET shows the page (EM-2), POST records (EM-1, ALL-1, ALL-2)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from campaigns.optouts import unsubscribe
from campaigns.optouts.unsubscribe import (
    CHOICE_CHANNEL,
    CHOICES,
    ONE_CLICK_FIELD,
    ONE_CLICK_VALUE,
    ChoiceError,
    PageView,
)
from suppression.ledger import CHANNEL_SCOPES
from worker.web import i18n
from worker.web.app import Web, language_of, public_url, web_of

router = APIRouter()

_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"text/html": {}}, "description": "The page"},
    404: {"content": {"text/html": {}}, "description": "Not our token (reveals nothing)"},
    503: {"content": {"text/html": {}}, "description": "Database unavailable: nothing stored"},
}


def _landing(
    web: Web, lang: str, token: str, page: PageView, status: int = 200, error: str | None = None
) -> HTMLResponse:
    return web.page(
        lang,
        "unsubscribe.html",
        status,
        token=token,
        scope=page.scope,
        stopped=page.stopped,
        customer=page.customer,
        choices=CHANNEL_SCOPES,
        error=error,
    )


@router.get(
    "/u/{token}",
    response_class=HTMLResponse,
    responses=_RESPONSES,
    summary="The unsubscribe page; never changes anything (EM-2)",
)
async def unsubscribe_page(request: Request, token: str, lang: str | None = None) -> HTMLResponse:
    web = web_of(request)
    language = i18n.negotiate(lang, request.headers.get("accept-language"))
    page = await run_in_threadpool(web.db, unsubscribe.view, token)
    if page is None:
        return web.not_found(language)
    return _landing(web, language, token, page)


@router.get("/u/{token}/", include_in_schema=False)
async def unsubscribe_page_with_slash(request: Request, token: str) -> RedirectResponse:
    """The link with a slash added: to the page, at the public URL (never the Host header)."""
    query = request.scope.get("query_string", b"").decode("latin-1")
    return RedirectResponse(public_url(web_of(request), f"/u/{token}", query), 307)


_FORM_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        ONE_CLICK_FIELD: {"type": "string", "example": ONE_CLICK_VALUE},
        "action": {"type": "string", "enum": list(CHOICES)},
        "channels": {"type": "array", "items": {"type": "string", "enum": list(CHANNEL_SCOPES)}},
        "lang": {"type": "string", "enum": list(i18n.LANGUAGES)},
    },
}


# A one-click POST to the link with a slash added is answered here too, not redirected:
# EM-1 says never a redirect, and a mail provider that does not follow one would lose
# the no. (A GET with the slash is redirected to the public URL: worker.web.app.)
@router.post("/u/{token}/", response_class=HTMLResponse, include_in_schema=False)
@router.post(
    "/u/{token}",
    response_class=HTMLResponse,
    responses={**_RESPONSES, 400: {"content": {"text/html": {}}, "description": "No choice"}},
    summary="RFC 8058 one-click (List-Unsubscribe=One-Click) or the page's form",
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {
                "application/x-www-form-urlencoded": {"schema": _FORM_SCHEMA},
                "multipart/form-data": {"schema": _FORM_SCHEMA},
            },
        }
    },
)
async def unsubscribe_post(request: Request, token: str) -> HTMLResponse:
    """200 only after the ledger entry is committed; a repeat changes nothing; never a
    redirect (EM-1). One-click stops the token's channel (ALL-2). The form is read here
    rather than declared field by field: one-click senders post either encoding."""
    web = web_of(request)
    async with request.form() as form:
        fields = {key: value for key, value in form.multi_items() if isinstance(value, str)}
        channels = [value for value in form.getlist("channels") if isinstance(value, str)]
    form_lang = fields.get("lang")
    language = i18n.negotiate(form_lang, None) if form_lang else language_of(request)
    one_click = fields.get(ONE_CLICK_FIELD)
    action = fields.get("action")
    if one_click is not None and one_click.strip().lower() == ONE_CLICK_VALUE.lower():
        choice = CHOICE_CHANNEL
    elif action in CHOICES:
        choice = action
    else:
        choice = ""
    try:
        scopes = await run_in_threadpool(
            web.db, unsubscribe.submit, token, choice, channels, web.ctx.clock()
        )
    except ChoiceError:
        page = await run_in_threadpool(web.db, unsubscribe.view, token)
        if page is None:
            return web.not_found(language)
        message = web.gettext(language, "Choose at least one channel.")
        return _landing(web, language, token, page, 400, message)
    if scopes is None:
        return web.not_found(language)
    contact = web.ctx.settings.organisation_contact
    return web.page(language, "done.html", scopes=scopes, contact=contact)
