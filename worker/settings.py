"""Settings: the only module that reads the environment (a `.env` file when present).

A missing or malformed setting stops with a message naming the variable.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from suppression.errors import ConfigurationError

if TYPE_CHECKING:  # imported where built: a store-only command loads no policy (holidays)
    from suppression.keys import Hasher
    from suppression.policy import PolicyConfig

_ENV_NAMES = {
    "database_url": "DATABASE_URL",
    "redis_url": "REDIS_URL",
    "secret_key": "OUTREACH_SECRET_KEY",
    "previous_secret_keys": "OUTREACH_PREVIOUS_SECRET_KEYS",
    "public_url": "OUTREACH_PUBLIC_URL",
    "organisation_name": "OUTREACH_ORGANISATION_NAME",
    "organisation_number": "OUTREACH_ORGANISATION_NUMBER",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = Field(default="sqlite:///outreach.db", alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    secret_key: str = Field(alias="OUTREACH_SECRET_KEY", min_length=16)
    previous_secret_keys: str = Field(default="", alias="OUTREACH_PREVIOUS_SECRET_KEYS")
    public_url: str = Field(default="http://127.0.0.1:8000", alias="OUTREACH_PUBLIC_URL")
    organisation_name: str = Field(
        default="Trygg Hjem Alarm AS", alias="OUTREACH_ORGANISATION_NAME"
    )
    organisation_number: str = Field(default="999999999", alias="OUTREACH_ORGANISATION_NUMBER")
    organisation_contact: str = Field(default="", alias="OUTREACH_ORGANISATION_CONTACT")
    partner_consent_max_age_days: int = Field(
        default=180, alias="OUTREACH_PARTNER_CONSENT_MAX_AGE_DAYS", ge=1
    )
    frequency_cap: int = Field(default=4, alias="OUTREACH_FREQUENCY_CAP", ge=1)
    log_level: str = Field(default="INFO", alias="OUTREACH_LOG_LEVEL")
    outbox_dir: str = Field(default="outbox", alias="OUTREACH_OUTBOX_DIR")
    worker_threads: int = Field(default=4, alias="OUTREACH_WORKER_THREADS", ge=1, le=64)
    worker_processes: int = Field(default=1, alias="OUTREACH_WORKER_PROCESSES", ge=1, le=64)
    # For demos only: a fixed "now" (ISO 8601 with offset) so that quiet hours and calling
    # hours do not hold a demo run at night. Never set in production.
    demo_now: str | None = Field(default=None, alias="OUTREACH_DEMO_NOW")
    # The machine's monotonic clock (time.monotonic, seconds) at which OUTREACH_DEMO_NOW
    # holds: processes started at different times then share one demo clock (without it,
    # a clock starts at its first use).
    demo_now_at: float | None = Field(default=None, alias="OUTREACH_DEMO_NOW_AT")
    partners_file: Path = Field(default=Path("partners.toml"), alias="OUTREACH_PARTNERS_FILE")
    lead_retention_days: int = Field(default=365, alias="OUTREACH_LEAD_RETENTION_DAYS", ge=1)
    # ALL-3: the largest fraction by which an alarm-contacts load may be shorter than the
    # last one without --allow-shrink (campaigns.customers).
    alarm_max_shrink: float = Field(default=0.10, alias="OUTREACH_ALARM_MAX_SHRINK", ge=0, le=1)
    sftp_poll_minutes: int = Field(default=5, alias="OUTREACH_SFTP_POLL_MINUTES", ge=1)
    # GD-5: archived partner files are deleted this long after they were archived.
    archive_keep_days: int = Field(default=30, alias="OUTREACH_ARCHIVE_KEEP_DAYS", ge=1)
    # Call lists exported for the call centre, likewise (campaigns.filetraces).
    calllist_keep_days: int = Field(default=30, alias="OUTREACH_CALLLIST_KEEP_DAYS", ge=1)
    # The clock's reconciliation (campaigns.reconcile): how often, and when a batch still
    # `queued` or a recipient still `sending` counts as stuck. Shorter in tests.
    reconcile_seconds: int = Field(default=30, alias="OUTREACH_RECONCILE_SECONDS", ge=1)
    stuck_queued_seconds: int = Field(default=120, alias="OUTREACH_STUCK_QUEUED_SECONDS", ge=1)
    stuck_sending_seconds: int = Field(default=300, alias="OUTREACH_STUCK_SENDING_SECONDS", ge=1)
    # Opt-out intake (issue 6): provider webhooks and the company mailbox; unset: disabled.
    twilio_auth_token: str | None = Field(default=None, alias="TWILIO_AUTH_TOKEN")
    mailchimp_webhook_secret: str | None = Field(default=None, alias="MAILCHIMP_WEBHOOK_SECRET")
    imap_host: str | None = Field(default=None, alias="IMAP_HOST")
    imap_port: int | None = Field(default=None, alias="IMAP_PORT", ge=1, le=65535)
    imap_user: str | None = Field(default=None, alias="IMAP_USER")
    imap_password: str | None = Field(default=None, alias="IMAP_PASSWORD")
    imap_folder: str = Field(default="INBOX", alias="IMAP_FOLDER")
    imap_done_folder: str = Field(default="Behandlet", alias="IMAP_DONE_FOLDER")
    imap_ssl: bool = Field(default=True, alias="IMAP_SSL")
    # Channels (issue 5): a provider is used when its key is set; unset: the outbox.
    mailchimp_api_key: str | None = Field(default=None, alias="MAILCHIMP_API_KEY")
    mailchimp_server: str | None = Field(default=None, alias="MAILCHIMP_SERVER")  # e.g. us1
    mailchimp_list_id: str | None = Field(default=None, alias="MAILCHIMP_LIST_ID")
    mailchimp_base_url: str | None = Field(default=None, alias="MAILCHIMP_BASE_URL")  # tests
    mailchimp_timeout: float = Field(default=10.0, alias="MAILCHIMP_TIMEOUT", gt=0)
    mailchimp_max_connections: int = Field(
        default=8, alias="MAILCHIMP_MAX_CONNECTIONS", ge=1, le=10
    )
    twilio_account_sid: str | None = Field(default=None, alias="TWILIO_ACCOUNT_SID")
    twilio_messaging_service_sid: str | None = Field(
        default=None, alias="TWILIO_MESSAGING_SERVICE_SID"
    )
    twilio_base_url: str | None = Field(default=None, alias="TWILIO_BASE_URL")  # tests
    twilio_timeout: float = Field(default=10.0, alias="TWILIO_TIMEOUT", gt=0)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(
            ("sqlite://", "postgresql://", "postgresql+psycopg://", "postgres://")
        ):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("organisation_number")
    @classmethod
    def _org_number(cls, value: str) -> str:
        digits = value.replace(" ", "")
        if not (digits.isdigit() and len(digits) == 9):
            raise ValueError("must be a 9-digit Norwegian organisation number")
        return digits

    @property
    def sqlalchemy_url(self) -> str:
        url = self.database_url
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://") :]
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        return url

    def hasher(self) -> Hasher:
        from suppression.keys import Hasher

        # Comma-separated, newest first; spaces around a key are not part of it.
        previous = [k.strip().encode() for k in self.previous_secret_keys.split(",") if k.strip()]
        return Hasher(self.secret_key.encode(), previous)

    def policy(self) -> PolicyConfig:
        from suppression.policy import PolicyConfig

        return PolicyConfig(
            organisation_name=self.organisation_name,
            organisation_number=self.organisation_number,
            partner_consent_max_age_days=self.partner_consent_max_age_days,
            frequency_cap=self.frequency_cap,
        )


def load(**overrides: object) -> Settings:
    """Read and check the settings; ConfigurationError names the variable at fault."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = str(error["loc"][0]) if error["loc"] else "settings"
        name = _ENV_NAMES.get(loc, loc.upper() if loc.islower() else loc)
        reason = "is required but not set" if error["type"] == "missing" else error["msg"]
        raise ConfigurationError(name, reason) from None


@lru_cache(maxsize=1)
def get() -> Settings:
    return load()


def log_level() -> str:
    """The log level, readable before the other settings are checked (OUTREACH_LOG_LEVEL)."""
    level = os.environ.get("OUTREACH_LOG_LEVEL", "INFO").upper()
    return level if level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "INFO"


def debug() -> bool:
    """OUTREACH_DEBUG=1 (or true, yes): a failing command prints its traceback, as with
    `outreach --debug`. Readable before the other settings are checked."""
    return os.environ.get("OUTREACH_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")
