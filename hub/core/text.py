"""Text PostgreSQL cannot store: the NUL character (``text`` and ``jsonb`` refuse it) and lone
UTF-16 surrogates (a JSON ``"\\ud800"`` decodes to one; it has no UTF-8 encoding)."""

from __future__ import annotations

import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """A description of the first character PostgreSQL cannot store in ``text``, or None."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return "a NUL character (\\u0000)"
    return f"a lone surrogate (\\u{ord(char):04x})"


def storable(value: Any) -> Any:
    """``value`` (JSON-like: strings, lists, dicts) with unstorable characters replaced by
    U+FFFD, for records that must be written whatever the input (the audit log)."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {storable(key): storable(child) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [storable(child) for child in value]
    return value
