"""SQL expressions that build, inside PostgreSQL, exactly the JSON values the Python path renders.

Each helper returns SQL text. The encodings mirror ``hub/ids.py`` and Strawberry's scalars:

- ``DateTime``: Python's ``datetime.isoformat()`` of a UTC value (``2026-01-01T09:00:00+00:00``,
  ``.ffffff`` only when the microseconds are not zero);
- global ids: ``to_global_id`` = unpadded URL-safe base64 of ``Type:key``;
- cursors: ``encode_cursor`` = unpadded URL-safe base64 of the compact JSON array orjson writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def quote_literal(text: str) -> str:
    """A SQL string literal. Only used for names that come from the compiler itself."""
    return "'" + text.replace("'", "''") + "'"


def iso_timestamp(expression: str) -> str:
    """Text equal to ``value.isoformat()`` of the timestamptz ``expression`` read in UTC."""
    return (
        f"(replace(to_char(({expression}) AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '') || '+00:00')"
    )


def base64url(text_expression: str, *, ascii_key: bool = False, short: bool = False) -> str:
    """Unpadded URL-safe base64 of the UTF-8 bytes of a text expression.

    Written with ``replace`` rather than ``translate``/``rtrim``, which cost three times as
    much per call. ``ascii_key``: the text is known to be plain ASCII without backslashes (UUIDs,
    codes, timestamps), so a cast replaces ``convert_to``. ``short``: at most 57 bytes, below
    the 76-character line length at which PostgreSQL's base64 inserts newlines.
    """
    raw = f"({text_expression})::bytea" if ascii_key else f"convert_to({text_expression}, 'UTF8')"
    encoded = f"encode({raw}, 'base64')"
    if not short:
        encoded = f"replace({encoded}, E'\\n', '')"
    return f"replace(replace(replace({encoded}, '+', '-'), '/', '_'), '=', '')"


def global_id(type_name: str, key_expression: str) -> str:
    """``to_global_id`` of a UUID or code key (ASCII, at most 36 characters)."""
    text = f"{quote_literal(type_name + ':')} || ({key_expression})::text"
    return base64url(text, ascii_key=True, short=len(type_name) + 1 + 36 <= 57)


def cursor(parts: list[str], *, ascii_key: bool = False) -> str:
    """``encode_cursor`` of a list whose items are given as JSON text expressions."""
    joined = " || ',' || ".join(parts)
    return base64url(f"'[' || {joined} || ']'", ascii_key=ascii_key)


def json_text(expression: str) -> str:
    """A JSON string literal of a text expression, escaped the way orjson escapes it."""
    return f"to_json(({expression})::text)::text"


def json_iso_timestamp(expression: str) -> str:
    return f"'\"' || {iso_timestamp(expression)} || '\"'"


def json_object(pairs: list[tuple[str, str]]) -> str:
    """``json_build_object`` of (response key, SQL expression) pairs, in selection order."""
    if not pairs:
        return "json_build_object()"
    args = ", ".join(f"{quote_literal(key)}, {value}" for key, value in pairs)
    return f"json_build_object({args})"


@dataclass
class Params:
    """The positional parameters of one statement and how each is computed at bind time.

    A binder receives the request's coerced variables and returns the value to send; it may
    raise a ``HubError`` (a bad cursor, a page too large), which makes the request fall back to
    the resolver path so that the error is reported exactly as that path reports it.
    """

    binders: list[Callable[[dict[str, Any]], Any]] = field(default_factory=list)

    def add(self, binder: Callable[[dict[str, Any]], Any], cast: str) -> str:
        self.binders.append(binder)
        return f"${len(self.binders)}::{cast}"

    def constant(self, value: Any, cast: str) -> str:
        """A parameter whose value is fixed by the plan (it is part of the plan's cache key)."""
        return self.add(lambda _variables: value, cast)

    def bind(self, variables: dict[str, Any]) -> list[Any]:
        return [binder(variables) for binder in self.binders]


@dataclass
class Aliases:
    """Fresh table aliases for nested subqueries (t1, t2, ...)."""

    count: int = 0

    def next(self, prefix: str = "t") -> str:
        self.count += 1
        return f"{prefix}{self.count}"
