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
from typing import Any, ClassVar

import yaml
from jsonschema import Draft4Validator, ValidationError
from jsonschema_path import SchemaPath
from openapi_core import Config, OpenAPI
from openapi_core.casting.schemas import oas30_write_schema_casters_factory
from openapi_core.casting.schemas.casters import SchemaCaster
from openapi_core.casting.schemas.factories import SchemaCastersFactory
from openapi_core.datatypes import RequestParameters
from openapi_core.deserializing.media_types import media_type_deserializers
from openapi_core.deserializing.media_types.deserializers import MediaTypeDeserializer
from openapi_core.deserializing.media_types.factories import MediaTypeDeserializersFactory
from openapi_core.deserializing.styles import style_deserializers
from openapi_core.deserializing.styles.deserializers import StyleDeserializer
from openapi_core.deserializing.styles.factories import StyleDeserializersFactory
from openapi_core.schema.parameters import get_style_and_explode
from openapi_core.templating.paths.datatypes import PathOperationServer
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.templating.paths.finders import APICallPathFinder
from openapi_core.validation.schemas import oas30_write_schema_validators_factory
from openapi_core.validation.schemas.factories import SchemaValidatorsFactory
from openapi_core.validation.schemas.validators import SchemaValidator
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


def _key(value: object) -> object:
    """A hashable stand-in for a factory argument (the option dicts are rebuilt per call)."""
    if isinstance(value, Mapping):
        return tuple(sorted((k, _key(v)) for k, v in value.items()))
    return value


# openapi-core checked one Messages POST in about 5 ms of CPU, which capped the fake near
# 200 requests/s. Most of it went into building the same objects again for every request
# and for every property of a form body: schema validators (each deep-copies a format
# checker), casters and style deserializers, which depend only on the schema and the
# options. The factories below (openapi-core's own, handed to it through its `Config`)
# build each of them once. Every request is still checked in full by openapi-core.
class _CachingValidatorsFactory(SchemaValidatorsFactory):
    def __init__(self, base: SchemaValidatorsFactory) -> None:
        super().__init__(base.schema_validator_cls, base.format_checker)
        self._built: dict[object, SchemaValidator] = {}

    def create(
        self, spec: SchemaPath, schema: SchemaPath, *args: Any, **kw: Any
    ) -> SchemaValidator:
        key = (spec, schema, _key(args), _key(kw))
        built = self._built.get(key)
        if built is None:
            built = self._built[key] = super().create(spec, schema, *args, **kw)
        return built


class _CachingCastersFactory(SchemaCastersFactory):
    def __init__(self, base: SchemaCastersFactory, validators: SchemaValidatorsFactory) -> None:
        super().__init__(validators, base.types_caster)
        self._built: dict[object, SchemaCaster] = {}

    def create(self, spec: SchemaPath, schema: SchemaPath, *args: Any, **kw: Any) -> SchemaCaster:
        key = (spec, schema, _key(args), _key(kw))
        built = self._built.get(key)
        if built is None:
            built = self._built[key] = super().create(spec, schema, *args, **kw)
        return built


class _CachingStyleFactory(StyleDeserializersFactory):
    def __init__(self, casters: SchemaCastersFactory) -> None:
        super().__init__(casters, style_deserializers)
        self._built: dict[object, StyleDeserializer] = {}

    def create(
        self, spec: SchemaPath, schema: SchemaPath, style: str, explode: bool, name: str
    ) -> StyleDeserializer:
        key = (spec, schema, style, explode, name)
        built = self._built.get(key)
        if built is None:
            built = self._built[key] = super().create(spec, schema, style, explode, name)
        return built


class _FormDeserializer(MediaTypeDeserializer):
    """openapi-core's deserializer of form bodies, except that the style of a property
    without an encoding object (every property of a Twilio form) is worked out once: for
    each property of each request openapi-core builds a document ``{"style": "form"}`` and
    reads the style and explode back out of it, a third of what was left of its cost."""

    _FORM_STYLE = SchemaPath.from_dict({"style": "form"})  # as openapi-core's decode_property
    _form_style: ClassVar[tuple[str, bool] | None] = None

    def decode_property(
        self, prop_name: str, prop_schema: SchemaPath, location: Mapping[str, Any]
    ) -> Any:
        if self.mimetype != "application/x-www-form-urlencoded" or (
            self.encoding is not None and prop_name in self.encoding
        ):
            return super().decode_property(prop_name, prop_schema, location)
        cls = type(self)
        if cls._form_style is None:
            cls._form_style = get_style_and_explode(cls._FORM_STYLE, default_location="query")
        style, explode = cls._form_style
        deserializer = self.style_deserializers_factory.create(
            self.spec, prop_schema, style, explode, name=prop_name
        )
        return deserializer.deserialize(location)


class _FormDeserializersFactory(MediaTypeDeserializersFactory):
    def create(self, *args: Any, **kw: Any) -> MediaTypeDeserializer:
        base = super().create(*args, **kw)
        return _FormDeserializer(
            base.spec, base.style_deserializers_factory, base.media_types_deserializer,
            base.mimetype, schema=base.schema, schema_validator=base.schema_validator,
            schema_caster=base.schema_caster, encoding=base.encoding, **base.parameters,
        )  # fmt: skip


class _CachingPathFinder(APICallPathFinder):
    """openapi-core's path finder, which matches a URL against every path template of the
    document (a third of the remaining cost); a URL's match is kept (unmatched ones are
    looked for again, so that the error is raised each time)."""

    MAX_KEPT = 10_000

    def __init__(self, spec: SchemaPath, base_url: str | None = None) -> None:
        super().__init__(spec, base_url=base_url)
        self._found: dict[tuple[str, str], PathOperationServer] = {}

    def find(self, method: str, name: str) -> PathOperationServer:
        found = self._found.get((method, name))
        if found is None:
            found = super().find(method, name)
            if len(self._found) < self.MAX_KEPT:
                self._found[method, name] = found
        return found


@functools.cache
def twilio_openapi() -> OpenAPI:
    """The Twilio 2010-04-01 OpenAPI object (built once per process)."""
    with (SPECS_DIR / TWILIO_API_SPEC).open(encoding="utf-8") as f:
        document = json.load(f)
    validators = _CachingValidatorsFactory(oas30_write_schema_validators_factory)
    casters = _CachingCastersFactory(oas30_write_schema_casters_factory, validators)
    styles = _CachingStyleFactory(casters)
    config = Config(
        extra_format_validators=dict.fromkeys(_TWILIO_FORMATS, _any_string),
        schema_validators_factory=validators,
        schema_casters_factory=casters,
        style_deserializers_factory=styles,
        path_finder_cls=_CachingPathFinder,
        media_type_deserializers_factory=_FormDeserializersFactory(
            styles, media_type_deserializers
        ),
    )
    # jsonschema_path keeps no cache of resolved paths unless asked to: without one every
    # lookup walks (and re-resolves) the document from the longest cached prefix.
    return OpenAPI(SchemaPath.from_dict(document, resolved_cache_maxsize=65536), config=config)


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
        # (under a millisecond) and avoids relying on its thread safety.
        self._lock = threading.Lock()

    def check(self, request: FormRequest) -> tuple[list[str], bool]:
        """Return the spec errors of ``request`` (empty when the spec accepts it), and
        whether the spec has no such path or method at all."""
        with self._lock:
            # Validation only: the fake reads the form itself, so openapi-core's unmarshalling
            # (which validates the body a second time) would be wasted work.
            errors = list(self._api.iter_request_errors(request))
        unknown = any(isinstance(e, PathError) for e in errors)
        return [_describe(error) for error in errors], unknown


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
