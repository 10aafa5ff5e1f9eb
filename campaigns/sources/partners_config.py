"""The partners file (TOML): who sends us leads, how their files look, where they arrive.

The format, with a full example, is in docs/partners.md; in short:

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

The whole file is validated at once (pydantic, `PartnersFile`): a wrong file stops with
a `PartnersFileInvalid` (a ConfigurationError) listing every error, each naming the
partner and the key. `check_partners` then looks at what the file points to on disk
(`outreach partners check`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from campaigns.sources.csvfile import encoding_name
from campaigns.sources.partner import DEFAULTABLE, LeadFormat, OurField
from suppression.errors import ConfigurationError

SETTING = "OUTREACH_PARTNERS_FILE"
PartnerName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
_DELIMITERS = {";": ";", ",": ",", "\t": "\t", "tab": "\t", "\\t": "\t"}
# A date_formats entry must read back the instant it writes, to the second, minute,
# hour or day: a format without the year, or with %I and no %p, reads another time.
_SAMPLE = datetime(2024, 1, 31, 13, 45, 56, tzinfo=UTC)
_SAMPLE_READS = {
    _SAMPLE.replace(tzinfo=None),
    _SAMPLE.replace(second=0, tzinfo=None),
    _SAMPLE.replace(minute=0, second=0, tzinfo=None),
    _SAMPLE.replace(hour=0, minute=0, second=0, tzinfo=None),
}


class PartnersFileInvalid(ConfigurationError):
    """The partners file has errors; `problems` names each one's partner and key."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        count = f"{len(problems)} errors: " if len(problems) > 1 else ""
        super().__init__(SETTING, f"{path}: {count}{'; '.join(problems)}")
        self.path = path
        self.problems = tuple(problems)


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
            try:
                read = datetime.strptime(_SAMPLE.strftime(fmt), fmt)
            except ValueError:
                read = None
            if read is None or read.replace(tzinfo=None) not in _SAMPLE_READS:
                raise ValueError(
                    f"{fmt!r} is not a strptime format of a day, month and year "
                    "(like %d.%m.%Y %H:%M)"
                )
        return value

    @field_validator("local_dir")
    @classmethod
    def _local_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not str(value).strip(". /"):
            raise ValueError("must name a folder (inbox/, archive/ and errors/ are made in it)")
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
            raise ValueError("keys 'sftp' and 'local_dir': give either sftp or local_dir, not both")
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


class PartnersFile(BaseModel):
    """The whole partners file: `[partners.NAME]` tables and nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partners: dict[PartnerName, PartnerConfig] = Field(default_factory=dict)


def parse_partners(text: str, path: Path) -> dict[str, PartnerConfig]:
    """The partners file's text; `path` names it in errors and anchors relative paths.
    PartnersFileInvalid lists every error of the file, not only the first."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(SETTING, f"{path}: not valid TOML: {exc}") from None
    problems: list[str] = []
    partners = document.get("partners")
    if isinstance(partners, dict):
        named: dict[str, Any] = {}
        for name, body in partners.items():
            if isinstance(body, Mapping):
                if "name" in body:
                    problems.append(
                        f"partner {name!r}, key 'name': not allowed (the name is the table's)"
                    )
                body = {**body, "name": name}
            named[name] = body
        document = {**document, "partners": named}
    try:
        found = PartnersFile.model_validate(document).partners
    except ValidationError as exc:
        problems += [_problem(error) for error in exc.errors()]
        found = {}
    if problems:
        raise PartnersFileInvalid(path, problems)
    return {name: _resolved(partner, path.parent) for name, partner in found.items()}


def _problem(error: ErrorDetails) -> str:
    """One pydantic error as "partner 'x', key 'y': reason"."""
    loc = [str(part) for part in error["loc"]]
    reason = "is required" if error["type"] == "missing" else error["msg"]
    reason = reason.removeprefix("Value error, ")
    if loc[0] != "partners":
        return f"unknown key {loc[0]!r} (only [partners.NAME])"
    if len(loc) == 1:
        return "partners must be a table of [partners.NAME]"
    name, key = loc[1], ".".join(loc[2:])
    if key == "[key]":
        return f"partner {name!r}: the name must be a-z, 0-9, - and _ (max 64)"
    if not key and error["type"] == "model_type":
        return f"partner {name!r} must be a table"
    if not key:
        return f"partner {name!r}, {reason}"
    if error["type"] == "extra_forbidden":
        reason = "not a key of the partners file (docs/partners.md)"
    return f"partner {name!r}, key {key!r}: {reason}"


def check_partners(partners: Mapping[str, PartnerConfig]) -> list[str]:
    """What the partners file points to, looked at on disk: each local_dir is a folder,
    each SFTP key and known_hosts file exists. A local_dir with a typo would otherwise
    be made empty at the first poll and polled for ever."""
    problems: list[str] = []
    for p in partners.values():
        if p.local_dir is not None and not p.local_dir.is_dir():
            what = "is not a folder" if p.local_dir.exists() else "does not exist"
            problems.append(f"partner {p.name!r}, key 'local_dir': {p.local_dir} {what}")
        if p.sftp is not None:
            for key, file in (
                ("sftp.private_key", p.sftp.private_key),
                ("sftp.known_hosts", p.sftp.known_hosts),
            ):
                if not file.is_file():
                    problems.append(f"partner {p.name!r}, key {key!r}: {file}: no such file")
    return problems


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
