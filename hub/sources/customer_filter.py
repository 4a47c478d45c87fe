"""A ``CustomerFilter`` given as JSON (``hub export --filter``, ``GET /export?filter=``), read
the way ``hub.reads.filters.CustomerFilterCompiler`` reads Strawberry's input objects.

The JSON has the GraphQL input's field names and values (``{"stage": {"in": ["PURCHASE"]},
"hasConsent": {"purpose": "MARKETING", "channel": "EMAIL"}}``, enum values as their names,
moments as ISO 8601 with an offset). Anything else is a ``BadUserInput`` naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any

import orjson
import sqlalchemy as sa

from hub.core.enums import ChannelCode, StageCode
from hub.core.errors import BadUserInput
from hub.core.settings import Settings
from hub.privacy.consent import ConsentChannel
from hub.reads.filters import CustomerFilterCompiler
from hub.vocabulary.registry import CODE, Vocabulary

MAX_DEPTH = 8

Reader = Callable[[Any, str, int], Any]


def _enum(kind: type[Enum]) -> Reader:
    def read(value: Any, where: str, depth: int) -> Any:
        if not isinstance(value, str) or value not in kind.__members__:
            names = ", ".join(kind.__members__)
            raise BadUserInput(f"`{where}` must be one of {names}; got {value!r}")
        return kind[value]

    return read


def _code(value: Any, where: str, depth: int) -> Any:
    """A code of a vocabulary kept as data (identity kinds, consent purposes), custom ones too;
    whether it is registered is checked after reading (``check_codes``)."""
    if not isinstance(value, str) or not CODE.fullmatch(value):
        raise BadUserInput(
            f"`{where}` must be a code (upper-case letters, digits and underscores, like "
            f"MARKETING); got {value!r}"
        )
    return value


def _enums(kind: type[Enum]) -> Reader:
    one = _enum(kind)

    def read(value: Any, where: str, depth: int) -> Any:
        if not isinstance(value, list):
            raise BadUserInput(f"`{where}` must be a list")
        return [one(item, where, depth) for item in value]

    return read


def _string(value: Any, where: str, depth: int) -> Any:
    if not isinstance(value, str):
        raise BadUserInput(f"`{where}` must be a string")
    return value


def _boolean(value: Any, where: str, depth: int) -> Any:
    if not isinstance(value, bool):
        raise BadUserInput(f"`{where}` must be true or false")
    return value


def _json(value: Any, where: str, depth: int) -> Any:
    return value


def _json_list(value: Any, where: str, depth: int) -> Any:
    if not isinstance(value, list):
        raise BadUserInput(f"`{where}` must be a list")
    return value


def _strings(value: Any, where: str, depth: int) -> Any:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadUserInput(f"`{where}` must be a list of strings")
    return value


def _moment(value: Any, where: str, depth: int) -> Any:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment
    raise BadUserInput(f"`{where}` must be an ISO 8601 date-time with an offset")


def _object(fields: Mapping[str, Reader]) -> Reader:
    def read(value: Any, where: str, depth: int) -> Any:
        return FilterObject(value, fields, where, depth)

    return read


def _filters(value: Any, where: str, depth: int) -> Any:
    if not isinstance(value, list):
        raise BadUserInput(f"`{where}` must be a list of filters")
    return [customer_filter(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]


def _filter(value: Any, where: str, depth: int) -> Any:
    return customer_filter(value, where, depth + 1)


_MOMENT = _object(dict.fromkeys(("gt", "gte", "lt", "lte"), _moment) | {"isNull": _boolean})
_FIELDS: dict[str, Reader] = {
    "and": _filters,
    "or": _filters,
    "not": _filter,
    "displayName": _object(
        {"eq": _string, "contains": _string, "startsWith": _string, "isNull": _boolean}
    ),
    "stage": _object({"eq": _enum(StageCode), "in": _enums(StageCode), "isNull": _boolean}),
    "channelsUsed": _object({k: _enums(ChannelCode) for k in ("any", "all", "none")}),
    "identity": _object({"kind": _code, "value": _string}),
    "trait": _object({"key": _string, "eq": _json, "in": _json_list, "exists": _boolean}),
    "lastSeenAt": _MOMENT,
    "createdAt": _MOMENT,
    "hasConsent": _object({"purpose": _code, "channel": _enum(ConsentChannel)}),
    "segment": _object({"in": _strings, "notIn": _strings}),
}
_REQUIRED = {"identity": ("kind",), "trait": ("key",), "hasConsent": ("purpose",)}
_DEFAULTS = {"hasConsent": {"channel": ConsentChannel.ANY}}


def _attribute(name: str) -> str:
    """``startsWith`` -> ``starts_with``, ``in`` -> ``in_`` (the Strawberry names)."""
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
    return snake + "_" if snake in ("and", "or", "not", "in") else snake


class FilterObject:
    """A JSON object read by the Python attribute names the filter compiler uses; an absent
    field is None (or its GraphQL default)."""

    def __init__(self, value: Any, fields: Mapping[str, Reader], where: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise BadUserInput(f"customer filters nest at most {MAX_DEPTH} levels deep")
        if not isinstance(value, dict):
            raise BadUserInput(f"`{where}` must be a JSON object")
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise BadUserInput(f"`{where}` has no field(s) {', '.join(unknown)}")
        name = where.rsplit(".", 1)[-1]
        for required in _REQUIRED.get(name, ()):
            if value.get(required) is None:
                raise BadUserInput(f"`{where}.{required}` is required")
        self._values: dict[str, Any] = dict(_DEFAULTS.get(name, {}))
        for key, child in value.items():
            if child is not None:
                self._values[_attribute(key)] = fields[key](child, f"{where}.{key}", depth)

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return self._values.get(attribute)


def customer_filter(value: Any, where: str = "filter", depth: int = 0) -> FilterObject:
    """The filter ``value`` (parsed JSON) as the compiler's input; ``BadUserInput`` if invalid."""
    return FilterObject(value, _FIELDS, where, depth)


def check_codes(value: Any, vocabulary: Vocabulary) -> None:
    """``UNKNOWN_CODE`` for an identity kind or consent purpose ``vocabulary`` does not
    register, anywhere in a filter ``customer_filter`` has read (so well formed)."""
    identity = value.get("identity")
    if identity is not None:
        vocabulary.identity_kind(identity["kind"])
    consent = value.get("hasConsent")
    if consent is not None:
        vocabulary.consent_purpose(consent["purpose"])
    for nested in [*(value.get("and") or []), *(value.get("or") or [])]:
        check_codes(nested, vocabulary)
    if value.get("not") is not None:
        check_codes(value["not"], vocabulary)


def _anything_goes(what: str) -> None:
    return None


def parse_filter(text: str | bytes) -> Any:
    """The filter's JSON, checked for shape (``BadUserInput`` naming the field): what can be
    refused before the database is asked anything."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise BadUserInput("the filter is not JSON") from None
    customer_filter(value)
    return value


def compile_filter(
    text: str | bytes,
    settings: Settings,
    vocabulary: Vocabulary,
    personal: Callable[[str], None] = _anything_goes,
) -> sa.ColumnElement[bool]:
    """A filter given as JSON text, compiled over ``customers`` by the one filter compiler;
    its identity kinds and consent purposes must be registered in ``vocabulary`` (read it with
    ``hub.vocabulary.registry.current`` first: a code defined a moment ago counts); ``personal``
    is called before a clause that would reveal personal data (raise there for a caller
    without ``pii``)."""
    value = parse_filter(text)
    check_codes(value, vocabulary)
    return CustomerFilterCompiler(settings, personal=personal).compile(customer_filter(value))
