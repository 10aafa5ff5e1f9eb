"""The Twilio channel reads requests' environment settings once, as requests would."""

from __future__ import annotations

import pytest
import requests

from campaigns.channels.twilio_sms.channel import settle_environment

PROXY = "http://127.0.0.1:3128"
API = "https://api.twilio.com"


@pytest.fixture(autouse=True)
def _no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def _merged(session: requests.Session, url: str) -> dict[str, object]:
    # What requests merges for each call of the SDK's HTTP client.
    return session.merge_environment_settings(url, {}, None, None, None)  # type: ignore[no-any-return]


def test_proxies_and_ca_bundle_are_taken_from_the_environment_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", PROXY)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    session = requests.Session()
    settle_environment(session, API)
    assert _merged(session, f"{API}/2010-04-01/Accounts/AC1/Messages.json") == {
        "proxies": {"https": PROXY},
        "stream": False,
        "verify": "/etc/ssl/certs/ca-certificates.crt",
        "cert": None,
    }
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # not read again
    assert _merged(session, f"{API}/x")["proxies"] == {"https": PROXY}


def test_no_proxy_for_the_api_host_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", PROXY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    session = requests.Session()
    settle_environment(session, "http://127.0.0.1:8080")
    assert _merged(session, "http://127.0.0.1:8080/x")["proxies"] == {}
    assert session.trust_env is False


def test_without_proxy_settings_nothing_is_proxied() -> None:
    session = requests.Session()
    settle_environment(session, API)
    assert _merged(session, API) == {"proxies": {}, "stream": False, "verify": True, "cert": None}
