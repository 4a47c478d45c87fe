"""SQL expressions that build, inside PostgreSQL, exactly the JSON values the Python path renders.

Each helper returns SQL text. The encodings mirror ``hub/core/ids.py`` and Strawberry's scalars:

- ``DateTime``: Python's ``datetime.isoformat()`` of a UTC value (``2026-01-01T09:00:00+00:00``,
  ``.ffffff`` only when the microseconds are not zero);
- global ids: ``to_global_id`` = unpadded URL-safe base64 of ``Type:key``;
- cursors: ``encode_cursor`` = unpadded URL-safe base64 of the compact JSON array orjson writes.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.sql.compiler import SQLCompiler


def quote_literal(text: str) -> str:
    """A SQL string literal. Only used for names that come from the compiler itself."""
    return "'" + text.replace("'", "''") + "'"


def iso_timestamp(expression: str) -> str:
    """Text equal to ``value.isoformat()`` of the timestamptz ``expression`` read in UTC."""
    return (
        f"(replace(to_char(({expression}) AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '') || '+00:00')"
    )


def json_timestamp(expression: str) -> str:
    """A JSON string equal to ``value.isoformat()`` of a timestamptz, for sessions on UTC.

    ``to_json`` writes ISO 8601 in the session time zone (the compiled path's pool is on UTC)
    at about half the cost of ``to_char``, but trims trailing zeros of the fraction
    (``.12`` where Python writes ``.120000``): those values alone take ``to_char``.
    """
    micros = f"date_part('microseconds', {expression})::int"
    return (
        f"CASE WHEN {micros} % 10 = 0 AND {micros} % 1000000 <> 0 "
        f"THEN to_json({iso_timestamp(expression)}) ELSE to_json({expression}) END"
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


HEX_DIGITS = "0123456789abcdef"


def _uuid_tail_is_url_safe(head: str) -> bool:
    """Whether base64 of ``head`` + any UUID text can contain neither ``+`` nor ``/``.

    Groups made of UUID text alone never can (no 6-bit run of the alphabet ``[0-9a-f-]`` is
    111110 or 111111); only the first group, mixing ``head`` with the UUID's first characters,
    has to be checked, for every possible first character.
    """
    if not head:
        return True
    need = 3 - len(head)
    candidates = [head + "".join(tail) for tail in _hex_tails(need)]
    return not any(
        set(base64.b64encode(candidate.encode())[:4].decode()) & {"+", "/"}
        for candidate in candidates
    )


def _hex_tails(length: int) -> list[tuple[str, ...]]:
    if length == 0:
        return [()]
    return [(digit, *rest) for digit in HEX_DIGITS for rest in _hex_tails(length - 1)]


def uuid_global_id(type_name: str, key_expression: str) -> str:
    """``to_global_id`` of a UUID key, with a single ``encode`` call.

    Base64 works in 3-byte groups: the largest 3-byte-aligned part of ``Type:`` is encoded
    here, in Python, once; PostgreSQL encodes only the rest plus the UUID's text, which needs no
    character swaps (see ``_uuid_tail_is_url_safe``) and whose padding length is known.
    """
    prefix = type_name + ":"
    aligned = len(prefix) // 3 * 3
    constant = base64.urlsafe_b64encode(prefix[:aligned].encode()).decode()
    head = prefix[aligned:]
    padding = -(len(head) + 36) % 3
    text = f"{quote_literal(head)} || ({key_expression})::text" if head else key_expression
    encoded = f"encode(({text})::text::bytea, 'base64')"
    if not _uuid_tail_is_url_safe(head):
        encoded = f"replace(replace({encoded}, '+', '-'), '/', '_')"
    if padding:
        encoded = f"left({encoded}, -{padding})"
    return f"({quote_literal(constant)} || {encoded})"


def global_id(type_name: str, key_expression: str) -> str:
    """``to_global_id`` of a code key (ASCII, at most 36 characters)."""
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


Binder = Callable[[dict[str, Any]], Any]


@dataclass
class Params:
    """The positional parameters of one statement and how each is computed at bind time.

    A binder receives the request's coerced variables and returns the value to send; it may
    raise a ``HubError`` (a bad cursor, a page too large), which makes the request fall back to
    the resolver path so that the error is reported exactly as that path reports it.
    """

    binders: list[Binder] = field(default_factory=list)

    def slot(self, binder: Binder) -> str:
        """A new parameter (``$n``)."""
        self.binders.append(binder)
        return f"${len(self.binders)}"

    def add(self, binder: Binder, cast: str) -> str:
        return f"{self.slot(binder)}::{cast}"

    def constant(self, value: Any) -> str:
        """A parameter whose value is fixed by the plan (it is part of the plan's cache key)."""
        return self.slot(lambda _variables: value)

    def bind(self, variables: dict[str, Any]) -> list[Any]:
        return [binder(variables) for binder in self.binders]


@dataclass
class Aliases:
    """Fresh table aliases for nested subqueries (t1, t2, ...)."""

    count: int = 0

    def next(self, prefix: str = "t") -> str:
        self.count += 1
        return f"{prefix}{self.count}"


# ---- relations ----


def json_array(item: str, source: str, where: str | None, order: str) -> str:
    """A JSON array of one ``item`` per row of ``source`` (``[]`` when there is none)."""
    condition = f" WHERE {where}" if where else ""
    return (
        f"SELECT coalesce(json_agg({item} ORDER BY {order}), '[]'::json) FROM {source}{condition}"
    )


def first_row(item: str, source: str, where: str, order: str | None) -> str:
    """``item`` of the row of ``source`` (the first in ``order``), NULL when there is none."""
    first = f" ORDER BY {order} LIMIT 1" if order else ""
    return f"SELECT {item} FROM {source} WHERE {where}{first}"


def present(key: str, item: str) -> str:
    """``item`` when a LEFT JOINed row was found (its ``key`` is not NULL), else NULL."""
    return f"CASE WHEN {key} IS NOT NULL THEN {item} END"


# ---- SQLAlchemy expressions (hub.reads) inside a compiled statement ----

_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]
_PLACEHOLDER = re.compile(r"\$(\d+)")


def render(statement: sa.ClauseElement, params: Params, placeholders: Mapping[str, str]) -> str:
    """SQL text of a SQLAlchemy statement whose values become ``params``: a bind parameter
    named in ``placeholders`` is that parameter of ``params`` (``$n``), every other one a new
    parameter holding its value, fixed by the plan.

    The statement must not hold ``$n`` text of its own (it renders its values as ``$n``).
    """
    compiled = statement.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    assert isinstance(compiled, SQLCompiler)
    names = compiled.positiontup or []
    slots = []
    for name in names:
        if name in placeholders:
            slots.append(placeholders[name])
            continue
        value = compiled.params[name]
        bind = compiled.binds.get(name)  # None for the items of an expanded IN list
        if bind is not None:
            process = bind.type.dialect_impl(_DIALECT).bind_processor(_DIALECT)
            value = process(value) if process is not None else value
        slots.append(params.constant(value))
    text = compiled.string
    assert {int(n) for n in _PLACEHOLDER.findall(text)} == set(range(1, len(names) + 1)), text
    return _PLACEHOLDER.sub(lambda match: slots[int(match.group(1)) - 1], text)
