"""``CustomerFilter`` as SQL text, clause for clause the same as ``resolvers/customer.py``.

The filter's values are fixed per plan (they are part of the plan's cache key) and travel as
statement parameters. Anything the resolver path would reject (too deep, an empty trait key, an
identifier that does not normalise, a moment without a time zone) raises ``NotCompilable`` so
that the resolver path reports it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from hub.compiled.sql import Aliases, Params
from hub.core.enums import IdentityKind
from hub.core.errors import HubError
from hub.core.settings import Settings
from hub.db.rows import contains_pattern
from hub.identity.identifiers import normalize_identifier
from hub.resolvers.customer import MAX_FILTER_DEPTH

KNOWN_FILTER_FIELDS = frozenset(
    {
        "and",
        "or",
        "not",
        "displayName",
        "stage",
        "channelsUsed",
        "identity",
        "trait",
        "lastSeenAt",
        "createdAt",
    }
)


class FilterNotCompilable(Exception):
    """Raised for filters the resolvers must handle (the planner turns it into a fallback)."""


def _all(clauses: list[str]) -> str:
    return "(" + " AND ".join(clauses) + ")" if clauses else "true"


def _any(clauses: list[str]) -> str:
    return "(" + " OR ".join(clauses) + ")" if clauses else "false"


def _moment(value: Any) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise FilterNotCompilable("a filter moment without a time zone")
    return value


class CustomerFilterSQL:
    def __init__(self, params: Params, aliases: Aliases, settings: Settings) -> None:
        self.params = params
        self.aliases = aliases
        self.settings = settings

    def condition(self, f: dict[str, Any], c: str, depth: int = 0) -> str:
        if depth > MAX_FILTER_DEPTH:
            raise FilterNotCompilable("filter nested too deep")
        unknown = {key for key, value in f.items() if value is not None} - KNOWN_FILTER_FIELDS
        if unknown:
            # A filter field this compiler does not know (e.g. hasConsent) must never be
            # ignored: the resolver path answers instead.
            raise FilterNotCompilable(f"filter fields {sorted(unknown)}")
        clauses: list[str] = []
        if f.get("and") is not None:
            clauses.append(_all([self.condition(g, c, depth + 1) for g in f["and"]]))
        if f.get("or") is not None:
            clauses.append(_any([self.condition(g, c, depth + 1) for g in f["or"]]))
        if f.get("not") is not None:
            # IS NOT TRUE, as on the resolver path: NOT of a NULL comparison (no stage, no name)
            # would drop a row for which the negated filter does not hold.
            clauses.append(f"(({self.condition(f['not'], c, depth + 1)}) IS NOT TRUE)")
        if f.get("displayName") is not None:
            clauses += self.string(f"{c}.display_name", f["displayName"])
        if f.get("stage") is not None:
            clauses += self.stage(f"{c}.current_stage", f["stage"])
        if f.get("channelsUsed") is not None:
            clauses += self.channels_used(c, f["channelsUsed"])
        if f.get("identity") is not None:
            clauses.append(self.identity(c, f["identity"]))
        if f.get("trait") is not None:
            clauses += self.trait(c, f["trait"])
        if f.get("lastSeenAt") is not None:
            clauses += self.moment(f"{c}.last_seen_at", f["lastSeenAt"])
        if f.get("createdAt") is not None:
            clauses += self.moment(f"{c}.created_at", f["createdAt"])
        return _all(clauses)

    def _null(self, column: str, is_null: Any) -> list[str]:
        if is_null is None:
            return []
        return [f"{column} IS NULL" if is_null else f"{column} IS NOT NULL"]

    def string(self, column: str, f: dict[str, Any]) -> list[str]:
        clauses = []
        if f.get("eq") is not None:
            clauses.append(f"{column} = {self.params.constant(f['eq'], 'text')}")
        if f.get("contains") is not None:
            pattern = self.params.constant(contains_pattern(f["contains"]), "text")
            clauses.append(f"{column} ILIKE {pattern} ESCAPE '\\'")
        if f.get("startsWith") is not None:
            pattern = self.params.constant(contains_pattern(f["startsWith"])[1:], "text")
            clauses.append(f"{column} ILIKE {pattern} ESCAPE '\\'")
        return clauses + self._null(column, f.get("isNull"))

    def stage(self, column: str, f: dict[str, Any]) -> list[str]:
        clauses = []
        if f.get("eq") is not None:
            clauses.append(f"{column} = {self.params.constant(f['eq'].value, 'text')}")
        if f.get("in") is not None:
            codes = [code.value for code in f["in"]]
            clauses.append(f"{column} = ANY({self.params.constant(codes, 'text[]')})")
        return clauses + self._null(column, f.get("isNull"))

    def _used(self, c: str, channels: list[Any]) -> str:
        i = self.aliases.next("u")
        codes = self.params.constant([channel.value for channel in channels], "text[]")
        return (
            f"EXISTS (SELECT 1 FROM interactions {i} WHERE {i}.customer_id = {c}.id "
            f"AND {i}.channel_code = ANY({codes}))"
        )

    def channels_used(self, c: str, f: dict[str, Any]) -> list[str]:
        clauses = []
        if f.get("any") is not None:
            clauses.append(self._used(c, f["any"]))
        if f.get("all") is not None:
            clauses += [self._used(c, [channel]) for channel in f["all"]]
        if f.get("none") is not None:
            clauses.append(f"(NOT {self._used(c, f['none'])})")
        return clauses

    def identity(self, c: str, f: dict[str, Any]) -> str:
        kind = IdentityKind(f["kind"].value)
        i = self.aliases.next("d")
        where = [
            f"{i}.customer_id = {c}.id",
            f"{i}.kind = {self.params.constant(kind.value, 'text')}",
        ]
        if f.get("value") is not None:
            try:
                value = normalize_identifier(kind, f["value"], self.settings.default_phone_region)
            except HubError as error:
                raise FilterNotCompilable(str(error)) from error
            where.append(f"{i}.value = {self.params.constant(value, 'text')}")
        return f"EXISTS (SELECT 1 FROM identities {i} WHERE {' AND '.join(where)})"

    def trait(self, c: str, f: dict[str, Any]) -> list[str]:
        key = f.get("key")
        if not key:
            raise FilterNotCompilable("a trait filter needs a non-empty key")
        clauses = []
        if f.get("eq") is not None or f.get("in") is not None:
            # Added only when used: every parameter of a plan must appear in its SQL.
            value = f"({c}.traits -> {self.params.constant(key, 'text')})"
        if f.get("eq") is not None:
            clauses.append(f"{value} = {self.params.constant(_json(f['eq']), 'jsonb')}")
        if f.get("in") is not None:
            clauses.append(
                _any([f"{value} = {self.params.constant(_json(v), 'jsonb')}" for v in f["in"]])
            )
        if f.get("exists") is not None:
            has = f"jsonb_exists({c}.traits, {self.params.constant(key, 'text')})"
            clauses.append(has if f["exists"] else f"(NOT {has})")
        return clauses

    def moment(self, column: str, f: dict[str, Any]) -> list[str]:
        clauses = []
        for name, operator in (("gt", ">"), ("gte", ">="), ("lt", "<"), ("lte", "<=")):
            if f.get(name) is not None:
                at = self.params.constant(_moment(f[name]), "timestamptz")
                clauses.append(f"{column} {operator} {at}")
        return clauses + self._null(column, f.get("isNull"))


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
