"""Provider webhooks: verify, parse, record, commit, and only then answer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from campaigns.optouts import mailchimp, record, twilio
from campaigns.optouts.events import Event, WebhookRejected, WebhookRequest
from suppression.keys import Hasher
from worker.web.app import language_of, web_of

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks")

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def _form_body(*fields: str) -> dict[str, object]:
    """OpenAPI for a form-encoded body with the provider's fields (all strings)."""
    schema = {
        "type": "object",
        "properties": {name: {"type": "string"} for name in fields},
        "additionalProperties": {"type": "string"},
    }
    return {
        "requestBody": {
            "required": False,
            "content": {"application/x-www-form-urlencoded": {"schema": schema}},
        }
    }


async def _webhook_request(request: Request) -> WebhookRequest:
    """The request as the provider sent it, with the public URL it called."""
    form = await request.form()
    fields = [(key, value) for key, value in form.multi_items() if isinstance(value, str)]
    public_url = web_of(request).ctx.settings.public_url + request.url.path
    if request.url.query:
        public_url += "?" + request.url.query
    return WebhookRequest.build(
        url=public_url,
        method=request.method,
        headers=dict(request.headers.items()),
        form=fields,
        path_params=dict(request.path_params),
    )


async def _receive(
    request: Request,
    events_of: Callable[[WebhookRequest, datetime], list[Event]],
    hook: WebhookRequest,
) -> None:
    web = web_of(request)
    now = web.ctx.clock()
    events = events_of(hook, now)

    def receive(engine: Engine, hasher: Hasher) -> None:
        record.receive(engine, hasher, events, now=now)

    await run_in_threadpool(web.db, receive)


def _twiml() -> Response:
    return Response(EMPTY_TWIML, media_type="application/xml")


def _rejected(exc: WebhookRejected) -> Response:
    log.warning("webhook refused: %s", exc)
    return PlainTextResponse("forbidden", status_code=403)


@router.post(
    "/twilio/inbound",
    openapi_extra=_form_body("MessageSid", "AccountSid", "From", "To", "Body", "OptOutType"),
    responses={200: {"content": {"application/xml": {}}}, 403: {}, 503: {}},
    summary="Inbound SMS: STOP and the other SM-1 keywords",
)
async def twilio_inbound(request: Request) -> Response:
    hook = await _webhook_request(request)
    try:
        twilio.verify(hook, auth_token=web_of(request).ctx.settings.twilio_auth_token)
    except WebhookRejected as exc:
        return _rejected(exc)
    await _receive(request, twilio.parse_inbound, hook)
    return _twiml()


@router.post(
    "/twilio/status",
    openapi_extra=_form_body("MessageSid", "MessageStatus", "ErrorCode", "To", "From"),
    responses={200: {"content": {"application/xml": {}}}, 403: {}, 503: {}},
    summary="Message status callbacks; error 21610 becomes an SMS suppression (SM-2)",
)
async def twilio_status(request: Request) -> Response:
    hook = await _webhook_request(request)
    try:
        twilio.verify(hook, auth_token=web_of(request).ctx.settings.twilio_auth_token)
    except WebhookRejected as exc:
        return _rejected(exc)
    # An unknown message id is recorded and answered 200, so that Twilio stops retrying.
    await _receive(request, twilio.parse_status, hook)
    return _twiml()


def _mailchimp_secret(request: Request, hook: WebhookRequest) -> bool:
    try:
        mailchimp.verify(hook, secret=web_of(request).ctx.settings.mailchimp_webhook_secret)
    except WebhookRejected:
        return False
    return True


@router.get(
    "/mailchimp/{secret}",
    responses={200: {"content": {"text/plain": {}}}, 404: {"content": {"text/html": {}}}},
    summary="Mailchimp's check that the webhook URL answers",
)
async def mailchimp_validate(request: Request, secret: str) -> Response:
    probe = WebhookRequest(url="", method="GET", headers={}, path_params={"secret": secret})
    if not _mailchimp_secret(request, probe):
        return web_of(request).not_found(language_of(request))
    return PlainTextResponse("ok")


@router.post(
    "/mailchimp/{secret}",
    openapi_extra=_form_body(
        "type",
        "fired_at",
        "data[email]",
        "data[reason]",
        "data[list_id]",
        "data[old_email]",
        "data[new_email]",
    ),
    responses={200: {"content": {"text/plain": {}}}, 404: {"content": {"text/html": {}}}},
    summary="Mailchimp audience events: unsubscribe, cleaned, upemail, profile (EM-4)",
)
async def mailchimp_event(request: Request, secret: str) -> Response:
    probe = WebhookRequest(url="", method="POST", headers={}, path_params={"secret": secret})
    if not _mailchimp_secret(request, probe):
        return web_of(request).not_found(language_of(request))
    hook = await _webhook_request(request)
    keyed = web_of(request).ctx.hasher.event_id
    await _receive(request, lambda hook, now: mailchimp.parse(hook, now, keyed), hook)
    return PlainTextResponse("ok")
