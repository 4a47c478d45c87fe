"""The checker of the authorization tests: what an answer to a role must never contain.

A finding is a plain record, so a run reports every leak it meets (per role, per root field)
instead of stopping at the first one.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Finding:
    root: str  # the root field(s) of the document
    kind: str  # "5xx", "not-json", "no-code", "internal", "pii", "hidden-id"
    detail: str
    value: str = ""  # the planted value or hidden id, for "pii" and "hidden-id"

    def __str__(self) -> str:
        return f"{self.kind} via {self.root}: {self.detail}"


@dataclass(frozen=True)
class Forbidden:
    """What one role must not be shown: planted personal values (compared in any case) and ids
    (global and raw) of rows outside its scope."""

    pii: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()
    # Each id's other form (global id <-> raw uuid): an error naming the raw uuid of a global id
    # the caller sent tells it nothing new.
    other_form: Mapping[str, str] = field(default_factory=dict)


def check(
    root: str, request: str, status: int, text: str, forbidden: Forbidden = Forbidden()
) -> list[Finding]:
    """Every rule one answer (``status``, body ``text``) breaks. ``request`` is the document and
    variables as sent: a value the caller sent itself may come back in an error message (it
    learns nothing), never in ``data``."""
    findings: list[Finding] = []
    if status >= 500:
        findings.append(Finding(root, "5xx", f"{status} {text[:200]}"))
    try:
        body: Any = json.loads(text)
    except ValueError:
        findings.append(Finding(root, "not-json", f"{status} {text[:200]}"))
        return findings
    errors = body.get("errors") if isinstance(body, dict) else None
    for error in errors if isinstance(errors, list) else []:
        code = (error.get("extensions") or {}).get("code") if isinstance(error, dict) else None
        if not code:
            findings.append(Finding(root, "no-code", str(error)[:200]))
        elif code == "INTERNAL_SERVER_ERROR":
            findings.append(Finding(root, "internal", str(error.get("path"))))
    data = body.get("data") if isinstance(body, dict) else body
    data_text = json.dumps(data).lower()
    error_text = json.dumps(errors).lower()
    sent = request.lower()
    for kind, values in (("pii", forbidden.pii), ("hidden-id", forbidden.ids)):
        for value in values:
            needle = value.lower()
            if needle in data_text:
                for path in sorted(paths_to(data, needle)) or ["data"]:
                    findings.append(Finding(root, kind, f"{value} at {path}", value))
            elif needle in error_text and not (
                needle in sent or forbidden.other_form.get(value, value).lower() in sent
            ):
                findings.append(Finding(root, kind, f"{value} in an error", value))
    return findings


def error_codes(text: str) -> list[str]:
    """The ``extensions.code`` of each error of an answer (none for an unreadable body)."""
    try:
        body = json.loads(text)
    except ValueError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    return [
        str((error.get("extensions") or {}).get("code"))
        for error in errors
        if isinstance(error, dict)
    ]


def paths_to(value: Any, needle: str, path: str = "") -> set[str]:
    """Where ``needle`` (lower case) occurs in a JSON value: dotted keys, list positions left
    out (``customer.traits.contact.email``), so a finding names the field that leaked."""
    if isinstance(value, dict):
        found: set[str] = set()
        for key, child in value.items():
            found |= paths_to(child, needle, f"{path}.{key}" if path else str(key))
        return found
    if isinstance(value, list):
        return set().union(*(paths_to(child, needle, path) for child in value))
    return {path} if isinstance(value, str) and needle in value.lower() else set()


def summary(findings: Iterable[Finding]) -> str:
    """One line per (kind, where): how often, and every distinct value. "where" is the path in
    the answer's data for leaks, the root field otherwise."""
    grouped: dict[tuple[str, str], Counter[str]] = {}
    for finding in findings:
        value, _, path = finding.detail.partition(" at ")
        where, detail = (path, value) if path else (finding.root, finding.detail)
        grouped.setdefault((finding.kind, where), Counter())[detail] += 1
    lines = []
    for (kind, where), details in sorted(grouped.items()):
        lines.append(f"{kind:9} {where}: x{sum(details.values())} {', '.join(sorted(details))}")
    return "\n".join(lines)
