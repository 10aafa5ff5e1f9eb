"""Request validation against the provider specifications in ``../shared/specs``.

Both validators are built once per process (the specs are large; loading them takes a few
hundred milliseconds) and are then shared by every fake server of that process.
"""

from __future__ import annotations

import functools
import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft4Validator, ValidationError
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import PathError
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPECS_DIR = Path(
    os.environ.get("OUTREACH_SPECS_DIR", Path(__file__).resolve().parents[3] / "shared" / "specs")
)

TWILIO_API_SPEC = "twilio_api_v2010.json"
MAILCHIMP_SPECS = ("mailchimp_lists.yml", "mailchimp_lists_list_id.yml", "mailchimp_campaigns.yml")

# Limits the Mailchimp spec states in prose ("Up to 500 members may be added or updated with
# each API call", "A maximum of 500 members can be sent") but not in its schemas. They are
# added to the schemas so that the fake refuses what the real API refuses.
_MAILCHIMP_MAX_ITEMS: dict[tuple[str, str], dict[str, int]] = {
    ("post", "/lists/{list_id}"): {"members": 500},
    ("post", "/lists/{list_id}/segments/{segment_id}"): {
        "members_to_add": 500,
        "members_to_remove": 500,
    },
}


def _any_string(value: object) -> bool:
    return isinstance(value, str)


# Twilio's spec uses formats of its own; openapi-core refuses parameters with an unknown
# format. The real API accepts any string there and answers with an error code of its own
# (21211 and so on), which the fake implements separately.
_TWILIO_FORMATS = (
    "phone-number",
    "phone-number-capabilities",
    "uri-map",
    "twiml",
    "http-method",
    "ice-server",
    "endpoint",
    "currency",
    "date-time-rfc-2822",
    "iso-country-code",
)


@functools.cache
def twilio_openapi() -> OpenAPI:
    """The Twilio 2010-04-01 OpenAPI object (built once per process)."""
    with (SPECS_DIR / TWILIO_API_SPEC).open(encoding="utf-8") as f:
        document = json.load(f)
    config = Config(extra_format_validators=dict.fromkeys(_TWILIO_FORMATS, _any_string))
    return OpenAPI.from_dict(document, config=config)


@dataclass
class FormRequest:
    """A request in the shape openapi-core expects (its ``Request`` protocol)."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: Mapping[str, str]
    body: bytes | None
    content_type: str
    host_url: str = "https://api.twilio.com"
    parameters: RequestParameters = field(init=False)

    def __post_init__(self) -> None:
        self.method = self.method.lower()
        self.content_type = self.content_type.lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(self.query),
            header=Headers(list(self.headers.items())),
        )


def _describe(exc: BaseException) -> str:
    """Flatten an openapi-core error and its causes into one readable line."""
    head = str(exc) or type(exc).__name__
    schema_messages: list[str] = []
    causes: list[str] = []
    seen: set[int] = {id(exc)}
    current = exc.__cause__ or exc.__context__
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for error in getattr(current, "schema_errors", None) or ():
            where = "/".join(str(p) for p in error.absolute_path)
            schema_messages.append(f"{where}: {_message(error)}" if where else _message(error))
        causes.append(str(current) or type(current).__name__)
        current = current.__cause__ or current.__context__
    details = schema_messages or [c for c in dict.fromkeys(causes) if c not in head]
    return f"{head}: {'; '.join(details)}" if details else head


class TwilioSpecValidator:
    """Checks requests against the Twilio OpenAPI document with openapi-core."""

    def __init__(self) -> None:
        self._api = twilio_openapi()
        # openapi-core keeps caches of its own; one validation at a time is cheap enough
        # (a few milliseconds) and avoids relying on its thread safety.
        self._lock = threading.Lock()

    def check(self, request: FormRequest) -> tuple[list[str], bool]:
        """Return the spec errors of ``request`` (empty when the spec accepts it), and
        whether the spec has no such path or method at all."""
        with self._lock:
            result = self._api.unmarshal_request(request)
        unknown = any(isinstance(e, PathError) for e in result.errors)
        return [_describe(error) for error in result.errors], unknown


@functools.cache
def mailchimp_paths() -> dict[str, dict[str, Any]]:
    """All ``paths`` of the Mailchimp spec files, merged (built once per process).

    The files overlap (``mailchimp_lists.yml`` repeats some ``/lists/{list_id}/...`` paths,
    differing only in tags); the file dedicated to a path wins.
    """
    merged: dict[str, dict[str, Any]] = {}
    for name in MAILCHIMP_SPECS:
        with (SPECS_DIR / name).open(encoding="utf-8") as f:
            document = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        for path, operations in document["paths"].items():
            merged.setdefault(path, {}).update(operations)
    return merged


@dataclass(frozen=True)
class Operation:
    """One Mailchimp operation: its path template, method and compiled validators."""

    method: str
    template: str
    regex: re.Pattern[str]
    body_validator: Draft4Validator | None
    body_required: bool
    query: tuple[dict[str, Any], ...]

    def body_errors(self, raw: bytes) -> list[str]:
        text = raw.decode("utf-8", errors="replace").strip()
        if self.body_validator is None:
            # The SDK sends the text "null" as the body of POSTs that take none.
            if text in ("", "null"):
                return []
            return [f"{self.method.upper()} {self.template} takes no request body"]
        if text in ("", "null"):
            return ["request body is required"] if self.body_required else []
        try:
            body = json.loads(text)
        except ValueError as exc:
            return [f"request body is not JSON: {exc}"]
        return [
            f"{'/'.join(str(p) for p in error.absolute_path) or '(body)'}: {_message(error)}"
            for error in sorted(
                self.body_validator.iter_errors(body), key=lambda e: list(e.absolute_path)
            )
        ]

    def query_errors(self, query: Mapping[str, list[str]]) -> list[str]:
        errors: list[str] = []
        for param in self.query:
            name = param["name"]
            values = query.get(name)
            if not values:
                if param.get("required"):
                    errors.append(f"query parameter {name!r} is required")
                continue
            for value in values:
                problem = _query_value_problem(param, value)
                if problem:
                    errors.append(f"query parameter {name!r}: {problem}")
        return errors


def _message(error: ValidationError, limit: int = 300) -> str:
    """The error message, without the whole (possibly huge) offending value."""
    if error.validator in ("maxItems", "minItems") and isinstance(error.instance, list):
        return f"has {len(error.instance)} items; {error.validator} is {error.validator_value}"
    text = str(error.message)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _query_value_problem(param: Mapping[str, Any], value: str) -> str | None:
    kind = param.get("type")
    if kind == "integer" and not re.fullmatch(r"-?\d+", value):
        return f"{value!r} is not an integer"
    if kind == "number":
        try:
            float(value)
        except ValueError:
            return f"{value!r} is not a number"
    if kind == "boolean" and value.lower() not in ("true", "false"):
        return f"{value!r} is not a boolean"
    if "enum" in param and value not in [str(v) for v in param["enum"]]:
        return f"{value!r} is not one of {param['enum']}"
    return None


def _template_regex(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(f"^{pattern}$")


def _with_max_items(schema: dict[str, Any], limits: Mapping[str, int]) -> dict[str, Any]:
    properties = dict(schema.get("properties", {}))
    for name, limit in limits.items():
        properties[name] = {**properties[name], "maxItems": limit}
    return {**schema, "properties": properties}


class MailchimpSpecValidator:
    """Finds the Mailchimp operation of a request and checks its body and query.

    Bodies are checked with ``jsonschema``'s Draft 4 validator against the
    ``parameters[in=body].schema`` of the operation (the files are Swagger 2.0).
    """

    def __init__(self, extra_operations: Iterable[tuple[str, str]] = ()) -> None:
        operations: list[Operation] = []
        for template, methods in mailchimp_paths().items():
            for method, spec in methods.items():
                if not isinstance(spec, dict) or method.startswith("x-"):
                    continue
                operations.append(self._compile(method, template, spec))
        for method, template in extra_operations:
            operations.append(self._compile(method, template, {}))
        # A template with more literal segments is the more specific one.
        operations.sort(key=lambda op: -len(re.findall(r"/[^{/]+(?=/|$)", op.template)))
        self.operations = operations

    @staticmethod
    def _compile(method: str, template: str, spec: Mapping[str, Any]) -> Operation:
        body = next((p for p in spec.get("parameters", ()) if p.get("in") == "body"), None)
        validator = None
        if body is not None:
            schema = body["schema"]
            limits = _MAILCHIMP_MAX_ITEMS.get((method, template))
            if limits:
                schema = _with_max_items(schema, limits)
            validator = Draft4Validator(schema)
        return Operation(
            method=method,
            template=template,
            regex=_template_regex(template),
            body_validator=validator,
            body_required=bool(body and body.get("required")),
            query=tuple(p for p in spec.get("parameters", ()) if p.get("in") == "query"),
        )

    def find(self, method: str, path: str) -> tuple[Operation | None, dict[str, str], bool]:
        """Return (operation, path parameters, whether the path exists for another method)."""
        path_known = False
        for operation in self.operations:
            match = operation.regex.match(path)
            if match is None:
                continue
            if operation.method == method.lower():
                return operation, match.groupdict(), True
            path_known = True
        return None, {}, path_known
