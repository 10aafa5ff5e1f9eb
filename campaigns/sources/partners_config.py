"""The partners file (TOML): who sends us leads, how their files look, where they arrive.

    [partners.boligpartner]                 # the partner's name: a-z, 0-9, - and _
    display_name = "Boligpartner AS"        # shown in source notices (GD-1) and reports
    encoding = "windows-1252"               # optional: utf-8, windows-1252, utf-16; default detect
    delimiter = ";"                         # optional: ";", ",", "\\t" (or "tab"); default detect
    date_formats = ["%d/%m/%Y %H:%M"]       # optional strptime formats, tried before ISO 8601
                                            # and dd.mm.yyyy HH:MM (naive times: Europe/Oslo)

    [partners.boligpartner.columns]         # their header = our field (campaigns.sources.partner)
    "Samtykke gitt" = "consent_at"

    [partners.boligpartner.defaults]        # evidence the same for every row, if not in the file
    company_named = "Trygg Hjem Alarm AS"

    [partners.boligpartner.sftp]            # where their files arrive: an SFTP server ...
    host = "sftp.example.no"
    port = 22
    user = "trygghjem"
    private_key = "keys/boligpartner_ed25519"   # relative paths: to the partners file
    known_hosts = "keys/known_hosts"            # the pinned host key; unknown or changed: refused
    inbox = "/inbox"
    archive = "/archive"
    errors = "/errors"
    timeout_seconds = 30

    # ... or, for the demo and tests, a local folder with inbox/, archive/ and errors/:
    # local_dir = "demo/partners/boligpartner"

A wrong file stops with a ConfigurationError naming the partner and the key.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from campaigns.sources.csvfile import encoding_name
from campaigns.sources.partner import DEFAULTABLE, LeadFormat, OurField
from suppression.errors import ConfigurationError

SETTING = "OUTREACH_PARTNERS_FILE"
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_DELIMITERS = {";": ";", ",": ",", "\t": "\t", "tab": "\t", "\\t": "\t"}


class SftpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(min_length=1)
    private_key: Path
    known_hosts: Path
    inbox: str = "inbox"
    archive: str = "archive"
    errors: str = "errors"
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)


class PartnerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    display_name: str = Field(min_length=1, max_length=200)
    columns: dict[str, OurField] = Field(default_factory=dict)
    encoding: str | None = None
    delimiter: str | None = None
    date_formats: list[str] = Field(default_factory=list)
    defaults: dict[str, str] = Field(default_factory=dict)
    sftp: SftpConfig | None = None
    local_dir: Path | None = None

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str | None) -> str | None:
        return None if value is None else encoding_name(value)

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value not in _DELIMITERS:
            raise ValueError('must be ";", ",", "\\t" or "tab"')
        return _DELIMITERS[value]

    @field_validator("date_formats")
    @classmethod
    def _date_formats(cls, value: list[str]) -> list[str]:
        for fmt in value:
            if "%" not in fmt:
                raise ValueError(f"{fmt!r} is not a strptime format (like %d.%m.%Y %H:%M)")
        return value

    @field_validator("defaults")
    @classmethod
    def _defaults(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key not in DEFAULTABLE:
                raise ValueError(f"{key!r} cannot have a default; only {', '.join(DEFAULTABLE)}")
        return value

    @model_validator(mode="after")
    def _one_inbox(self) -> PartnerConfig:
        if self.sftp is not None and self.local_dir is not None:
            raise ValueError("give either sftp or local_dir, not both")
        return self

    @property
    def source(self) -> str:
        """The name of this partner in imports, contact sources and consent records."""
        return f"partner:{self.name}"

    @property
    def lead_format(self) -> LeadFormat:
        return LeadFormat(
            columns=self.columns, date_formats=tuple(self.date_formats), defaults=self.defaults
        )


def load_partners(path: Path) -> dict[str, PartnerConfig]:
    """Read and check the partners file; ConfigurationError names the partner and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(SETTING, f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(SETTING, f"{path}: cannot be read: {exc}") from None
    return parse_partners(text, path)


def parse_partners(text: str, path: Path) -> dict[str, PartnerConfig]:
    """The partners file's text; `path` names it in errors and anchors relative paths."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(SETTING, f"{path}: not valid TOML: {exc}") from None
    unknown = [key for key in document if key != "partners"]
    if unknown:
        raise ConfigurationError(
            SETTING, f"{path}: unknown key {unknown[0]!r} (only [partners.NAME])"
        )
    partners = document.get("partners", {})
    if not isinstance(partners, dict):
        raise ConfigurationError(SETTING, f"{path}: partners must be a table of [partners.NAME]")
    return {name: _partner(path, name, body) for name, body in partners.items()}


def _partner(path: Path, name: str, body: Any) -> PartnerConfig:
    if not _NAME.fullmatch(name):
        raise ConfigurationError(
            SETTING, f"{path}: partner {name!r}: the name must be a-z, 0-9, - and _ (max 64)"
        )
    if not isinstance(body, Mapping):
        raise ConfigurationError(SETTING, f"{path}: partner {name!r} must be a table")
    if "name" in body:
        raise ConfigurationError(SETTING, f"{path}: partner {name!r}, key 'name': not allowed")
    try:
        partner = PartnerConfig.model_validate({**body, "name": name})
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"]) or "?"
        reason = "is required" if error["type"] == "missing" else error["msg"]
        reason = reason.removeprefix("Value error, ")
        raise ConfigurationError(
            SETTING, f"{path}: partner {name!r}, key {key!r}: {reason}"
        ) from None
    return _resolved(partner, path.parent)


def _resolved(partner: PartnerConfig, base: Path) -> PartnerConfig:
    """Relative paths in the partners file are relative to the file itself."""

    def at(p: Path) -> Path:
        return p if p.is_absolute() else base / p

    update: dict[str, Any] = {}
    if partner.local_dir is not None:
        update["local_dir"] = at(partner.local_dir)
    if partner.sftp is not None:
        update["sftp"] = partner.sftp.model_copy(
            update={
                "private_key": at(partner.sftp.private_key),
                "known_hosts": at(partner.sftp.known_hosts),
            }
        )
    return partner.model_copy(update=update) if update else partner


def partner(partners: Mapping[str, PartnerConfig], name: str) -> PartnerConfig:
    """One partner by name; ConfigurationError when the partners file does not have it."""
    try:
        return partners[name]
    except KeyError:
        known = ", ".join(sorted(partners)) or "none"
        raise ConfigurationError(SETTING, f"no partner {name!r} (known: {known})") from None
