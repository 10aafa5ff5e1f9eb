"""The unsubscribe link: GET shows the page (EM-2), POST records (EM-1, ALL-1, ALL-2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from campaigns.optouts import unsubscribe
from campaigns.optouts.unsubscribe import (
    CHOICE_CHANNEL,
    CHOICES,
    ONE_CLICK_VALUE,
    ChoiceError,
    PageView,
)
from suppression.ledger import CHANNEL_SCOPES
from worker.web import i18n
from worker.web.app import Web, language_of, web_of

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
        choices=CHANNEL_SCOPES,
        error=error,
    )


@router.get(
    "/u/{token}",
    response_class=HTMLResponse,
    responses=_RESPONSES,
    summary="The unsubscribe page; never changes anything (EM-2)",
)
def unsubscribe_page(request: Request, token: str, lang: str | None = None) -> HTMLResponse:
    web = web_of(request)
    language = i18n.negotiate(lang, request.headers.get("accept-language"))
    page = unsubscribe.view(web.ctx.engine, web.ctx.hasher, token)
    if page is None:
        return web.not_found(language)
    return _landing(web, language, token, page)


@router.post(
    "/u/{token}",
    response_class=HTMLResponse,
    responses={**_RESPONSES, 400: {"content": {"text/html": {}}, "description": "No choice"}},
    summary="RFC 8058 one-click (List-Unsubscribe=One-Click) or the page's form",
)
def unsubscribe_post(
    request: Request,
    token: str,
    one_click: Annotated[str | None, Form(alias="List-Unsubscribe")] = None,
    action: Annotated[str | None, Form()] = None,
    channels: Annotated[list[str] | None, Form()] = None,
    form_lang: Annotated[str | None, Form(alias="lang")] = None,
) -> HTMLResponse:
    """200 only after the ledger entry is committed; a repeat changes nothing; never a
    redirect (EM-1). One-click stops the token's channel (ALL-2)."""
    web = web_of(request)
    language = i18n.negotiate(form_lang, None) if form_lang else language_of(request)
    if one_click is not None and one_click.strip().lower() == ONE_CLICK_VALUE.lower():
        choice = CHOICE_CHANNEL
    elif action in CHOICES:
        choice = action
    else:
        choice = ""
    try:
        scopes = unsubscribe.submit(web.ctx.engine, web.ctx.hasher, token, choice, channels or ())
    except ChoiceError:
        page = unsubscribe.view(web.ctx.engine, web.ctx.hasher, token)
        if page is None:
            return web.not_found(language)
        message = web.gettext(language, "Choose at least one channel.")
        return _landing(web, language, token, page, 400, message)
    if scopes is None:
        return web.not_found(language)
    return web.page(language, "done.html", scopes=scopes)
