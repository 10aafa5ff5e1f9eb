"""The Twilio SMS channel: the official SDK, one message per recipient.

The sender is a Messaging Service (its pool picks the number or alphanumeric id);
delivery reports go to our status webhook. The body is the rendered template, which
already carries the recipient's unsubscribe link (SM-3; its segment count was checked
when the campaign was created). Quiet hours (ES-6) and the messages-per-second limit
are the engine's: it holds batches outside the SMS window and throttles every burst.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import requests

# The SDK imports its Messages API on a client's first use (tens of milliseconds): loaded
# with this module, the first sub-batch of a new worker does not arrive at Twilio late,
# bunched with the next one the throttle admitted.
import twilio.rest.api.v2010.account.message  # noqa: F401
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from campaigns.channels.base import Channel, Outcome, OutgoingMessage
from campaigns.channels.recipients import RecipientLookup
from campaigns.channels.twilio_sms import errors
from suppression.errors import ChannelError, ConfigurationError

# How many of a number's newest messages `reconcile` reads looking for ours.
RECONCILE_LOOKBACK: Final = 50
# Requests in flight at once per process. Twilio answers a create in a few hundred
# milliseconds: one request at a time, a thread sends a handful of messages a second, and a
# sub-batch the throttle admits at once would trickle out over many seconds.
DEFAULT_CONCURRENCY: Final = 8

# The SDK logs every request's query string at INFO, and a message list is filtered by
# phone number: its logger is kept quiet so that no number reaches a log (GD-4).
_SDK_LOGGER = logging.getLogger("outreach.channels.twilio.http")
_SDK_LOGGER.setLevel(logging.WARNING)

OptOutCallback = Callable[[str], None]


TWILIO_API: Final = "https://api.twilio.com"


def settle_environment(session: requests.Session, url: str) -> None:
    """Read once what requests reads from the environment on every call (proxies and
    no_proxy, the CA bundle) for the API's URL, and stop it reading it again: it scans the
    whole environment per request, 8 % of a worker's CPU at hundreds of messages per
    second. The settings are requests' own, as it would have found them for `url`."""
    found = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies.update(found["proxies"])
    session.verify = found["verify"]
    session.trust_env = False


class TwilioSmsChannel(Channel):
    """Sends through Twilio's Messages API (2010-04-01) with a timeout on every request.

    `on_opt_out(e164)` is called when Twilio answers 21610 (the person sent STOP to our
    sender): it must record the SMS suppression (SM-2) before returning. `lookup`
    gives `reconcile` the numbers and unsubscribe links of recipients it only has the
    ids of. A batch's messages go out on up to `concurrency` threads of the process (one
    pool, shared by every batch). Safe to share between threads: each thread gets its own
    SDK client, whose session keeps its connection alive.
    """

    name = "twilio_sms"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        messaging_service_sid: str,
        status_callback_url: str,
        base_url: str | None = None,
        timeout: float = 10,
        *,
        on_opt_out: OptOutCallback | None = None,
        lookup: RecipientLookup | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if not messaging_service_sid.startswith("MG"):
            raise ConfigurationError(
                "TWILIO_MESSAGING_SERVICE_SID", "must be a Messaging Service SID (MG...)"
            )
        if timeout <= 0:
            raise ConfigurationError("TWILIO_TIMEOUT", "must be a positive number of seconds")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messaging_service_sid = messaging_service_sid
        self.status_callback_url = status_callback_url
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout = timeout
        self.on_opt_out = on_opt_out
        self.lookup = lookup
        self.concurrency = concurrency
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _client(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            # The SDK's default HTTP client waits forever; ours gives up after `timeout`.
            http = TwilioHttpClient(timeout=self.timeout, logger=_SDK_LOGGER)
            if http.session is not None:
                settle_environment(http.session, self.base_url or TWILIO_API)
            client = Client(self.account_sid, self.auth_token, http_client=http)
            if self.base_url:
                client.api.base_url = self.base_url
            self._local.client = client
        return client

    def build(self, message: OutgoingMessage) -> dict[str, str]:
        return {
            "to": message.to,
            "body": message.body,
            "messaging_service_sid": self.messaging_service_sid,
            "status_callback": self.status_callback_url,
        }

    def send_payloads(
        self, payloads: Sequence[tuple[OutgoingMessage, dict[str, str]]]
    ) -> list[Outcome]:
        """Each message as `Channel.send_payloads` sends it, several at once. After a rate
        limit no further message is started; those not sent are left for a retry, as the
        one-by-one loop leaves the rest of the batch."""
        if self.concurrency == 1 or len(payloads) < 2:
            return super().send_payloads(payloads)
        limited: list[float] = []  # the first rate limit's retry_after

        def one(item: tuple[OutgoingMessage, dict[str, str]]) -> Outcome:
            if limited:
                return Outcome(
                    item[0].recipient_id, "retry", error="rate limited", retry_after=limited[0]
                )
            [outcome] = super(TwilioSmsChannel, self).send_payloads([item])
            if outcome.retry_after is not None:  # only a rate limit sets it
                limited.append(outcome.retry_after)
            return outcome

        return list(self._executor().map(one, payloads))

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="twilio")
            return self._pool

    def send_payload(self, message: OutgoingMessage, payload: dict[str, str]) -> str:
        if not message.to:
            raise ChannelError("no phone number (erased)", permanent=True, code="no_address")
        try:
            created = self._client().messages.create(**payload)
        except TwilioRestException as exc:
            if exc.code == errors.OPTED_OUT and self.on_opt_out is not None:
                # SM-2: committed to the ledger before the outcome is recorded.
                self.on_opt_out(message.to)
            raise errors.from_rest_error(exc) from None
        except requests.RequestException as exc:
            raise errors.from_transport_error(exc) from None
        return str(created.sid)

    def reconcile(self, campaign_id: int, recipient_ids: Sequence[int]) -> dict[int, str]:
        """Ask Twilio for each recipient's newest messages; one whose body carries the
        recipient's own unsubscribe link (a token unique to this recipient of this
        campaign) is ours. A recipient Twilio cannot tell us about stays unknown."""
        if self.lookup is None:
            return {}
        refs = self.lookup(recipient_ids)
        found: dict[int, str] = {}
        for rid in recipient_ids:
            ref = refs.get(rid)
            if ref is None or not ref.phone or not ref.unsubscribe_url:
                continue
            try:
                listed = self._client().messages.list(to=ref.phone, limit=RECONCILE_LOOKBACK)
            except (TwilioRestException, requests.RequestException):
                continue  # asked again at the next reconciliation
            for m in listed:
                if m.body and ref.unsubscribe_url in m.body and m.sid:
                    found[rid] = str(m.sid)
                    break
        return found
