"""Opaque identifiers: Relay global ids, pagination cursors and time-ordered UUIDs."""

from __future__ import annotations

import base64
import binascii
import os
import time
import uuid
from typing import Any

import orjson

from hub.core.errors import BadUserInput


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def to_global_id(type_name: str, key: str) -> str:
    return _b64(f"{type_name}:{key}".encode())


def from_global_id(global_id: str) -> tuple[str, str]:
    """Split a global id into (type name, key); a malformed id is a ``BAD_USER_INPUT`` error."""
    try:
        type_name, _, key = _unb64(global_id).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadUserInput(f"{global_id!r} is not a valid id") from None
    if not type_name or not key:
        raise BadUserInput(f"{global_id!r} is not a valid id")
    return type_name, key


def parse_uuid(key: str, what: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(key)
    except ValueError:
        raise BadUserInput(f"{key!r} is not a valid {what}") from None


def uuid_from_global_id(global_id: str, expected_type: str) -> uuid.UUID:
    """The UUID inside a global id of ``expected_type``; a bare UUID is accepted as well."""
    try:
        return uuid.UUID(global_id)
    except ValueError:
        pass
    type_name, key = from_global_id(global_id)
    if type_name != expected_type:
        raise BadUserInput(f"{global_id!r} is a {type_name} id, not a {expected_type} id")
    return parse_uuid(key)


def encode_cursor(ordering: str, values: list[Any]) -> str:
    """A cursor holding a row's sort-key values, tagged with the list and ordering it belongs to
    so that a cursor handed to another list or another ordering is refused, not misread."""
    return _b64(orjson.dumps([ordering, *values]))


def decode_cursor(cursor: str, ordering: str, length: int) -> list[Any]:
    """Values of a cursor made by ``encode_cursor``; anything else is ``BAD_USER_INPUT``."""
    try:
        values = orjson.loads(_unb64(cursor))
    except (binascii.Error, orjson.JSONDecodeError, ValueError):
        raise BadUserInput(f"{cursor!r} is not a valid cursor") from None
    if not isinstance(values, list) or not values or not isinstance(values[0], str):
        raise BadUserInput(f"{cursor!r} is not a valid cursor") from None
    if values[0] != ordering or len(values) != length + 1:
        raise BadUserInput(
            f"{cursor!r} is a cursor of another list or ordering; page with the cursors of "
            "this one, or start again without `after`/`before`"
        )
    return values[1:]


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7): new rows land at the end of their indexes."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)
