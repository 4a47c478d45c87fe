"""Files in and out: lines of an NDJSON or CSV file as interaction inputs (or profile changes),
their derived idempotency keys, the reject file and the resume checkpoint; rows out as lines
``hub import`` reads back.

Storing goes through the tracking path's pieces: ``hub.ingest.record.record`` for interactions
(the batch path of ``recordInteractions``) and ``hub.sources.track.apply_profile`` for profiles.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import orjson

from hub.core.enums import Direction
from hub.core.errors import BadUserInput
from hub.core.ids import uuid_from_global_id
from hub.ingest.validation import InteractionInput
from hub.privacy.consent import ConsentChannel, ConsentStatus
from hub.sources.segment import ConsentGiven, ProfileChange
from hub.vocabulary.registry import CODE

# ``{"line": 3, "code": "BAD_USER_INPUT", "reason": "..."}``: one line of the reject file.
_FIELDS = {
    "identities",
    "touchpointId",
    "type",
    "direction",
    "occurredAt",
    "conversationKey",
    "summary",
    "sentiment",
    "outcome",
    "agent",
    "attributes",
    "idempotencyKey",
}
_TEXT_FIELDS = ("conversationKey", "summary", "outcome", "agent", "idempotencyKey")


@dataclass(frozen=True)
class Line:
    """One record of the file: its line number (1-based, the CSV header is line 1) and its
    object, or the error that made it unreadable."""

    number: int
    value: dict[str, Any] | None
    raw: bytes
    error: BadUserInput | None = None


def derived_key(source: str, number: int, raw: bytes) -> str:
    """The idempotency key of a line that has none: stable for the same file name, line number
    and content, so a re-run (or a resumed run) finds what it stored before."""
    digest = hashlib.sha256(source.encode() + b"\0" + str(number).encode() + b"\0" + raw)
    return "import:" + digest.hexdigest()[:40]


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadUserInput(f"`{name}` must be a string")
    return value


def _identities(value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, list) or not value:
        raise BadUserInput("`identities` must be a non-empty list of {kind, value}")
    identities = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise BadUserInput("each identity is an object {kind, value} with a string value")
        kind = item.get("kind")
        if not isinstance(kind, str) or not CODE.fullmatch(kind):
            raise BadUserInput(f"unknown identity kind {kind!r}")
        identities.append((kind, item["value"]))  # registered? checked by the ingest path
    return identities


def interaction_input(value: dict[str, Any], default_key: str) -> InteractionInput:
    """A ``RecordInteractionInput``-shaped object (GraphQL field names) as the domain input;
    ``BadUserInput`` names what is wrong. ``default_key`` is used when it has no key."""
    unknown = sorted(set(value) - _FIELDS)
    if unknown:
        raise BadUserInput(f"unknown field(s): {', '.join(unknown)}")
    kind = value.get("type")
    if not isinstance(kind, str) or not CODE.fullmatch(kind):
        raise BadUserInput(f"`type` {kind!r} is not an interaction type")
    direction = value.get("direction")
    if direction not in Direction.__members__:
        raise BadUserInput(f"`direction` {direction!r} is not INBOUND or OUTBOUND")
    touchpoint = value.get("touchpointId")
    if not isinstance(touchpoint, str):
        raise BadUserInput("`touchpointId` is required (a Touchpoint id or a UUID)")
    occurred = _text(value.get("occurredAt"), "occurredAt")
    try:
        occurred_at = datetime.fromisoformat(occurred) if occurred else None
    except ValueError:
        raise BadUserInput(f"`occurredAt` {occurred!r} is not an ISO 8601 date-time") from None
    sentiment = value.get("sentiment")
    if sentiment is not None and (
        isinstance(sentiment, bool) or not isinstance(sentiment, int | float)
    ):
        raise BadUserInput("`sentiment` must be a number")
    texts = {name: _text(value.get(name), name) for name in _TEXT_FIELDS}
    return InteractionInput(
        identities=_identities(value.get("identities")),
        touchpoint_id=uuid_from_global_id(touchpoint, "Touchpoint"),
        type=str(kind),
        direction=str(direction),
        occurred_at=occurred_at,
        conversation_key=texts["conversationKey"],
        summary=texts["summary"],
        sentiment=None if sentiment is None else float(sentiment),
        outcome=texts["outcome"],
        agent=texts["agent"],
        attributes=value.get("attributes"),
        idempotency_key=texts["idempotencyKey"] or default_key,
    )


def _code(value: Any, where: str) -> str:
    """A vocabulary code's shape; whether it is registered is checked when the line is stored
    (the vocabulary can change while a file is imported)."""
    if not isinstance(value, str) or not CODE.fullmatch(value):
        raise BadUserInput(f"`{where}` {value!r} is not a code (upper-case letters, digits, _)")
    return value


def _member(kind: type[StrEnum], value: Any, where: str) -> Any:
    if not isinstance(value, str) or value not in kind.__members__:
        names = ", ".join(kind.__members__)
        raise BadUserInput(f"`{where}` must be one of {names}; got {value!r}")
    return kind[value]


def _consent(value: Any, index: int) -> ConsentGiven:
    where = f"profile.consents[{index}]"
    if not isinstance(value, dict):
        raise BadUserInput(f"`{where}` must be an object {{purpose, channel, status}}")
    unknown = sorted(set(value) - {"purpose", "channel", "status", "expiresAt", "source"})
    if unknown:
        raise BadUserInput(f"`{where}` has unknown field(s): {', '.join(unknown)}")
    expires = _text(value.get("expiresAt"), f"{where}.expiresAt")
    try:
        expires_at = datetime.fromisoformat(expires) if expires else None
    except ValueError:
        expires_at = None
        problem = "is not an ISO 8601 date-time"
    else:
        problem = "needs a time zone"
    if expires and (expires_at is None or expires_at.tzinfo is None):
        raise BadUserInput(f"`{where}.expiresAt` {expires!r} {problem}")
    return ConsentGiven(
        purpose=_code(value.get("purpose"), f"{where}.purpose"),
        channel=_member(ConsentChannel, value.get("channel", "ANY"), f"{where}.channel"),
        status=_member(ConsentStatus, value.get("status"), f"{where}.status"),
        expires_at=expires_at,
        source=_text(value.get("source"), f"{where}.source"),
    )


def profile_change(value: Any) -> ProfileChange:
    """``{"identities": [{kind, value}], "traits": {...}, "displayName": "...",
    "consents": [{purpose, channel, status, expiresAt, source}]}``."""
    if not isinstance(value, dict):
        raise BadUserInput("`profile` must be an object")
    unknown = sorted(set(value) - {"identities", "traits", "displayName", "consents"})
    if unknown:
        raise BadUserInput(f"unknown profile field(s): {', '.join(unknown)}")
    traits = value.get("traits") or {}
    if not isinstance(traits, dict):
        raise BadUserInput("`profile.traits` must be an object")
    consents = value.get("consents") or []
    if not isinstance(consents, list):
        raise BadUserInput("`profile.consents` must be a list")
    return ProfileChange(
        identities=_identities(value.get("identities")),
        traits=traits,
        display_name=_text(value.get("displayName"), "displayName"),
        consents=[_consent(item, i) for i, item in enumerate(consents)],
    )


def ndjson_lines(handle: IO[bytes]) -> Iterator[Line]:
    """One ``Line`` per non-blank line, streamed."""
    for number, raw in enumerate(handle, start=1):
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            continue
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            yield Line(number, None, raw, BadUserInput("the line is not JSON"))
            continue
        if not isinstance(value, dict):
            yield Line(number, None, raw, BadUserInput("the line is not a JSON object"))
            continue
        yield Line(number, value, raw)


_TARGET = re.compile(r"^(?:identities\[(?P<kind>[A-Z_]+)\]|(?P<path>[A-Za-z]+(?:\.[^.\s]+)*))$")


@dataclass(frozen=True)
class ColumnMapping:
    """CSV column -> input path: ``identities[EMAIL]``, ``occurredAt``, ``attributes.amount``,
    ``profile.traits.tier``; ``constants`` fill paths no column gives (e.g. touchpointId)."""

    columns: dict[str, str]
    constants: dict[str, Any]


def load_mapping(path: Path) -> ColumnMapping:
    """A mapping file, YAML or JSON: ``{"columns": {col: path}, "constants": {path: value}}``
    (or just the ``columns`` object)."""
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml  # type: ignore[import-untyped]

        data = yaml.safe_load(text)
    else:
        data = orjson.loads(text)
    if not isinstance(data, dict):
        raise BadUserInput(f"{path}: a mapping is an object of column -> path")
    columns = data.get("columns", data if "constants" not in data else {})
    constants = data.get("constants", {})
    for column, target in columns.items():
        if not isinstance(target, str) or not _TARGET.match(target):
            raise BadUserInput(f"{path}: column {column!r} maps to an invalid path {target!r}")
        if target.startswith("identities[") and not CODE.fullmatch(target[11:-1]):
            raise BadUserInput(f"{path}: unknown identity kind in {target!r}")
    return ColumnMapping(dict(columns), dict(constants))


def _put(target: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value


def _mapped(row: dict[str, str], mapping: ColumnMapping) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for path, constant in mapping.constants.items():
        _put(value, path, constant)
    identities: list[dict[str, str]] = []
    for column, target in mapping.columns.items():
        cell = row.get(column)
        if cell is None or cell == "":
            continue
        if target.startswith("identities["):
            identities.append({"kind": target[11:-1], "value": cell})
        elif target == "sentiment":
            try:
                _put(value, target, float(cell))
            except ValueError:
                raise BadUserInput(f"column {column!r}: {cell!r} is not a number") from None
        else:
            _put(value, target, cell)
    if any(target.startswith("profile.") for target in mapping.columns.values()):
        value.setdefault("profile", {})["identities"] = identities
    elif identities:
        value["identities"] = identities
    return value


def csv_lines(handle: IO[str], mapping: ColumnMapping) -> Iterator[Line]:
    """One ``Line`` per CSV record (its number: the line it starts on), streamed."""
    reader = csv.DictReader(handle)
    header = reader.fieldnames or []
    missing = sorted(set(mapping.columns) - set(header))
    if missing:
        raise BadUserInput(f"the CSV has no column(s) {', '.join(missing)} named in the mapping")
    number = reader.line_num + 1
    for row in reader:
        # The extra cells of a long record sit under the key None: not a str key.
        raw = orjson.dumps(row, option=orjson.OPT_NON_STR_KEYS)
        if None in row:  # more cells than the header has columns
            error = BadUserInput(f"the record has more cells than the {len(header)} columns")
            yield Line(number, None, raw, error)
        elif None in row.values():  # fewer: DictReader fills the missing columns with None
            cells = sum(value is not None for value in row.values())
            error = BadUserInput(
                f"the record has {cells} cell(s), the header {len(header)} columns"
                " (a missing column: nothing of it is guessed)"
            )
            yield Line(
                number, None, orjson.dumps({k: v for k, v in row.items() if v is not None}), error
            )
        else:
            try:
                yield Line(number, _mapped(row, mapping), raw)
            except BadUserInput as error:
                yield Line(number, None, raw, error)
        number = reader.line_num + 1


@dataclass
class Checkpoint:
    """Where an import stands: every line up to ``line`` is stored (or rejected) and the
    reject file was ``rejects_bytes`` long then. Written atomically after each batch."""

    path: Path
    source: str
    line: int = 0
    rejects_bytes: int = 0

    def save(self) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        data = {"source": self.source, "line": self.line, "rejectsBytes": self.rejects_bytes}
        temporary.write_bytes(orjson.dumps(data))
        os.replace(temporary, self.path)

    @classmethod
    def load(cls, path: Path, source: str) -> Checkpoint:
        if not path.exists():
            return cls(path, source)
        data = orjson.loads(path.read_bytes())
        if data.get("source") != source:
            raise BadUserInput(
                f"{path} is the checkpoint of {data.get('source')!r}, not {source!r}"
            )
        return cls(path, source, int(data["line"]), int(data["rejectsBytes"]))
