"""How personal values look to a principal without the ``pii`` scope.

Names, summaries and other free text become ``•••``. E-mail addresses keep their first character
and domain (``a•••@example.com``) and phone numbers their last two digits (``•••58``), enough for
an agent or analyst to tell two identifiers apart without reading them. Personal keys of JSON
objects (traits, attributes) keep their key and lose their value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MASK = "•••"


def mask_text(value: Any) -> Any:
    if value is None or value == "":
        return value
    return MASK


def mask_email(value: str) -> str:
    local, at, domain = value.partition("@")
    if not at:
        return MASK
    return f"{local[:1]}{MASK}@{domain}"


def mask_phone(value: str) -> str:
    digits = [c for c in value if c.isdigit()]
    return MASK + "".join(digits[-2:]) if len(digits) > 4 else MASK


def mask_identity(kind: str, value: str) -> str:
    if kind == "EMAIL":
        return mask_email(value)
    if kind == "PHONE":
        return mask_phone(value)
    return MASK


def mask_keys(values: Any, personal: Iterable[str]) -> Any:
    """A copy of a JSON object with the values of personal keys masked (others kept)."""
    if not isinstance(values, Mapping):
        return values
    hidden = set(personal)
    return {key: (MASK if key in hidden else value) for key, value in values.items()}
