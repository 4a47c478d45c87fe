"""How personal values look to a principal without the ``pii`` scope.

Names, summaries and other free text become ``•••``. E-mail addresses keep their first character
and domain (``a•••@example.com``) and phone numbers their last two digits (``•••58``), enough for
an agent or analyst to tell two identifiers apart without reading them.

JSON (traits, attributes, merge previews, event payloads) is walked at every depth, objects and
arrays alike (``mask_json``): the value of a *personal key* becomes exactly ``•••`` whatever its
type (a string, a number, null, a whole nested object or array); every other string keeps its
text except e-mail addresses and ``+``-prefixed phone numbers found in it, which take the
identifier forms above. A key is personal when one of the patterns (``DEFAULT_PERSONAL_KEYS`` plus
the ``HUB_PERSONAL_KEYS`` setting) matches it ignoring case and separators: the key is split into
words (``Phone_Number``, ``phone-number``, ``phoneNumber`` → ``phone``, ``number``) and a pattern
matches any run of consecutive words spelling it (``e_mail`` and ``contactEMail`` match
``email``; ``hotel`` does not match ``tel``). A pattern starting with ``=`` matches only the whole
key (``=name``: ``name`` and ``Name``, not ``product_name``). docs/security.md, "Fields: masking".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from hub.core.settings import Settings
from hub.vocabulary.registry import latest

MASK = "•••"

# Deeper JSON than this is masked whole: the walk stays bounded whatever a client stored.
MAX_DEPTH = 32
# A key longer than this many words is matched on its first ones only (bounded work per key).
MAX_KEY_WORDS = 16
# The longest pattern, in words ("date of birth", "social security number"): runs are no longer.
MAX_PATTERN_WORDS = 4

DEFAULT_PERSONAL_KEYS: tuple[str, ...] = (
    # contact points
    "email",
    "phone",
    "mobile",
    "tel",
    "telephone",
    "fax",
    "msisdn",
    # postal address
    "address",
    "street",
    "postcode",
    "postal code",
    "zip",
    "zipcode",
    # names
    "=name",
    "first name",
    "last name",
    "full name",
    "display name",
    "given name",
    "family name",
    "middle name",
    "maiden name",
    "surname",
    # birth
    "birth date",
    "date of birth",
    "dob",
    "birthday",
    # network and device
    "ip",
    "device id",
    "idfa",
    "gaid",
    "advertising id",
    # precise location
    "lat",
    "lon",
    "lng",
    "latitude",
    "longitude",
    # official numbers and money
    "ssn",
    "social security",
    "national id",
    "tax id",
    "passport",
    "card number",
    "credit card",
    "iban",
    "password",
)

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_EMAIL = re.compile(r"[^\s@<>()\[\],;:\"']+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_PHONE = re.compile(r"\+[0-9][0-9 ().-]{5,22}[0-9]")


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


def mask_identity_value(kind: str, value: Any) -> Any:
    """An identifier's value as a principal without ``pii`` reads it (empty and null kept)."""
    return mask_identity(kind, value) if value else value


def key_words(key: str) -> list[str]:
    """``contactEMail_2`` → ``["contact", "e", "mail", "2"]``: the words of a key, lower-case."""
    return [word.lower() for word in _WORD.findall(key)[:MAX_KEY_WORDS]]


class PersonalKeys:
    """Which JSON keys are personal: word patterns (any run of a key's words) and whole keys."""

    def __init__(self, patterns: Iterable[str]) -> None:
        runs: set[str] = set()
        whole: set[str] = set()
        for pattern in patterns:
            exact = pattern.strip().startswith("=")
            spelled = "".join(key_words(pattern))
            if spelled:
                (whole if exact else runs).add(spelled)
        self.runs = frozenset(runs)
        self.whole = frozenset(whole)
        self.is_personal = lru_cache(maxsize=4096)(self._is_personal)

    def _is_personal(self, key: str) -> bool:
        words = key_words(key)
        if "".join(words) in self.whole:
            return True
        for start in range(len(words)):
            spelled = ""
            for word in words[start : start + MAX_PATTERN_WORDS]:
                spelled += word
                if spelled in self.runs:
                    return True
        return False


@lru_cache(maxsize=32)
def _personal_keys(extra: tuple[str, ...]) -> PersonalKeys:
    return PersonalKeys((*DEFAULT_PERSONAL_KEYS, *extra))


def personal_keys(settings: Settings) -> PersonalKeys:
    """The default patterns plus ``HUB_PERSONAL_KEYS``, every personal attribute of a registered
    interaction type (``personalAttributes``, from this process's latest vocabulary snapshot:
    ``hub.vocabulary.registry``) as a whole-key pattern, and (deprecated, still honoured) every
    key of ``HUB_PERSONAL_TRAITS`` / ``HUB_PERSONAL_ATTRIBUTES`` alike.

    The vocabulary's names are masked in every interaction's attributes, not only its own
    type's: a read path masks a JSON value without knowing its interaction's type, and masking
    more is the safe side."""
    legacy = (
        *settings.personal_traits,
        *settings.personal_attributes,
        *sorted(latest().personal_attributes),
    )
    return _personal_keys((*settings.personal_keys, *(f"={key}" for key in legacy)))


def mask_free_text(text: str) -> str:
    """``text`` with every e-mail address and ``+``-prefixed phone number in it masked."""
    if "@" in text:
        text = _EMAIL.sub(lambda m: mask_email(m.group()), text)
    if "+" in text:
        text = _PHONE.sub(lambda m: mask_phone(m.group()), text)
    return text


def mask_free_text_value(value: Any) -> Any:
    """Short business text (a ticket key, an outcome, a list of them): only the identifiers in
    it are masked; anything but text is kept."""
    if isinstance(value, list):
        return [mask_free_text(item) if isinstance(item, str) else item for item in value]
    return mask_free_text(value) if isinstance(value, str) else value


# Exact types a JSON value's leaves mostly have (subclasses take the general checks below).
_PLAIN_SCALARS = frozenset({int, float, bool, type(None)})


def mask_json(value: Any, keys: PersonalKeys, depth: int = 0) -> Any:
    """A copy of a JSON value with personal keys' values and identifier-shaped text masked.

    One visit per node (linear in the value's size); deeper than ``MAX_DEPTH`` becomes ``•••``.
    """
    kind = type(value)
    if kind is str:
        return mask_free_text(value)
    if kind in _PLAIN_SCALARS:  # the common leaves, without the abstract-class checks below
        return value
    if isinstance(value, str):
        return mask_free_text(value)
    if depth >= MAX_DEPTH and isinstance(value, (Mapping, list, tuple)):
        return MASK
    if kind is dict or isinstance(value, Mapping):
        # A key can hold an identifier too ({"ana@example.com": true}): its text is masked alike.
        personal = keys.is_personal
        masked = {}
        for key, item in value.items():
            text = key if type(key) is str else str(key)
            masked[mask_free_text(text)] = (
                MASK if personal(text) else mask_json(item, keys, depth + 1)
            )
        return masked
    if isinstance(value, (list, tuple)):
        return [mask_json(item, keys, depth + 1) for item in value]
    return value
