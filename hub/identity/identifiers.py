"""Normalising and validating identifiers before they are stored or matched.

Two spellings of the same identifier must meet: " Ana@Example.COM " and "ana@example.com" are one
e-mail, "+44 20 7946 0958" and "+442079460958" one phone number.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from hub.core.errors import BadUserInput
from hub.core.settings import Settings
from hub.identity.resolution import IdentifierKey
from hub.vocabulary.registry import latest, unknown_code

MAX_IDENTIFIER_LENGTH = 256
SOCIAL_PLATFORMS = frozenset(
    {"facebook", "instagram", "x", "twitter", "linkedin", "tiktok", "youtube", "whatsapp"}
)
_HANDLE = re.compile(r"[a-z0-9._-]{1,100}")


class InvalidIdentifier(BadUserInput):
    """An identifier that cannot be normalised; ``extensions`` name its kind."""


# A plain ASCII local part: RFC 5322 dot-atom (no quotes, no leading, trailing or double dots).
_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_PLAIN_MAX = 200  # well inside email_validator's 64 (local part) and 254 (address) limits


@functools.lru_cache(maxsize=65536)
def normalize_email(value: str) -> str:
    """The normalised address, as ``email_validator`` decides it (with its error message).

    Validating costs ~50 µs, most of it the domain (IDNA rules per character), which a batch
    repeats for every address of the same provider. So a plain address — ASCII dot-atom local
    part, ASCII domain, short — takes the domain's verdict from a cache (validated once, as
    ``a@domain``) and needs no other check; anything else, and every invalid address, goes
    through ``email_validator`` whole. ``tests/identity/test_identifiers_email.py`` compares both on
    generated addresses. Results are cached too: returning customers bring the same addresses.
    """
    stripped = value.strip()
    local, at, domain = stripped.rpartition("@")
    if (
        at
        and len(stripped) <= _PLAIN_MAX
        and len(local) <= 64
        and domain.isascii()
        and _PLAIN_LOCAL.fullmatch(local)
    ):
        plain_domain = _email_domain(domain)
        if plain_domain is not None:
            return f"{local}@{plain_domain}".lower()
    return _validated_email(value)


def _validated_email(value: str) -> str:
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidIdentifier(f"{value!r} is not a valid e-mail address: {error}") from None
    return result.normalized.lower()


@functools.lru_cache(maxsize=4096)
def _email_domain(domain: str) -> str | None:
    """The normalised domain as ``email_validator`` gives it, or None if it refuses it."""
    try:
        return validate_email(f"a@{domain}", check_deliverability=False).domain
    except EmailNotValidError:
        return None


def normalize_phone(value: str, default_region: str | None) -> str:
    try:
        number = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        hint = "" if default_region else " (give it in international form, +country code)"
        raise InvalidIdentifier(f"{value!r} is not a valid phone number{hint}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_social_handle(value: str) -> str:
    platform, sep, handle = value.strip().lower().partition(":")
    handle = handle.strip().lstrip("@")
    if not sep or platform not in SOCIAL_PLATFORMS or not _HANDLE.fullmatch(handle):
        raise InvalidIdentifier(
            f"{value!r} is not a social handle: write platform:handle, e.g. instagram:ana.b, "
            f"with platform one of {', '.join(sorted(SOCIAL_PLATFORMS))}"
        )
    if platform == "twitter":
        platform = "x"
    return f"{platform}:{handle}"


def normalize_identifier(
    kind: str,
    value: str,
    default_phone_region: str | None = None,
    normaliser: str | None = None,
) -> str:
    """The canonical form of ``value``, by ``normaliser`` (the identity kind's, from the
    vocabulary; by default the one of this process's latest vocabulary snapshot, which a lookup
    uses: ``hub.vocabulary.registry.latest``); raises ``InvalidIdentifier`` (BAD_USER_INPUT)."""
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise InvalidIdentifier(f"identifiers are at most {MAX_IDENTIFIER_LENGTH} characters")
    if normaliser is None:
        known = latest().identity_kinds.get(kind)
        normaliser = known.normaliser if known is not None else "TRIMMED"
    how = normaliser
    if how == "EMAIL":
        return normalize_email(value)
    if how == "PHONE":
        return normalize_phone(value, default_phone_region)
    if how == "SOCIAL_HANDLE":
        return normalize_social_handle(value)
    if how == "AS_IS":
        if not value:
            raise InvalidIdentifier(f"an empty {kind} is not an identifier")
        return value
    stripped = value.strip()
    if not stripped:
        raise InvalidIdentifier(f"an empty {kind} is not an identifier")
    return stripped.lower() if how == "LOWER_CASE" else stripped


def _blocked(settings: Settings) -> frozenset[str]:
    """The blocked list as ``KIND:value`` strings (kind upper-cased, value trimmed)."""
    return _blocked_set(tuple(settings.blocked_identifiers))


@functools.lru_cache(maxsize=8)
def _blocked_set(entries: tuple[str, ...]) -> frozenset[str]:
    blocked = set()
    for entry in entries:
        kind, sep, value = entry.partition(":")
        if sep:
            blocked.add(f"{kind.strip().upper()}:{value.strip()}")
    return frozenset(blocked)


def _is_blocked(blocked: frozenset[str], kind: str, value: str) -> bool:
    return f"{kind}:{value}" in blocked or f"{kind}:{value.lower()}" in blocked


def normalize_identities(
    identities: Sequence[tuple[str, str]],
    settings: Settings,
    normalisers: Mapping[str, str] | None = None,
) -> tuple[IdentifierKey, ...]:
    """Normalised, de-duplicated identifiers (input order kept), blocked values dropped.

    ``normalisers`` (kind → normaliser, the vocabulary's registered kinds): a kind not in it is
    an ``UnknownCode``; without it, the built-in kinds' normalisers."""
    if not identities:
        raise BadUserInput("an interaction needs at least one identity")
    blocked = _blocked(settings)
    keys: list[IdentifierKey] = []
    for kind, raw in identities:
        normaliser = None
        if normalisers is not None:
            normaliser = normalisers.get(kind)
            if normaliser is None:
                raise unknown_code("identityKind", kind)
        if _is_blocked(blocked, kind, raw.strip()):
            continue
        value = normalize_identifier(kind, raw, settings.default_phone_region, normaliser)
        if _is_blocked(blocked, kind, value):
            continue
        if (kind, value) not in keys:
            keys.append((kind, value))
    if not keys:
        raise BadUserInput(
            "every identity given is on the blocked list (shared or test values): "
            "the interaction cannot be attributed to a person"
        )
    return tuple(keys)
