"""Masking on the compiled read path: the answer a caller without the ``pii`` scope reads is the
resolver path's answer, mask for mask (``hub.access.masking``, applied there by the
``PersonalData`` field extension).

Which field takes which mask comes from the schema itself (``hub.schema.permissions.
personal_field_masks``, handed to ``CompiledReads`` by the app): a field declared personal with a
mask this module does not know makes the planner leave the query to the resolvers.

- ``text`` (free text → ``•••``, empty and null kept) is exact in SQL: the statement masks it
  (``text_mask_sql``), nothing is done afterwards.
- ``json`` (``mask_json``: personal keys at any depth, identifiers inside strings), ``free_text``
  (identifiers inside short text) and ``identity`` (by the identifier's kind) rest on Python's
  regular expressions and Unicode classes, which PostgreSQL's do not reproduce exactly: the
  statement returns the raw value (an identity's as ``[kind, value]``) and ``apply`` masks the
  decoded JSON answer in one pass along a *mask tree* the planner built with the statement,
  calling the very functions of ``hub.access.masking``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hub.access.masking import (
    MASK,
    PersonalKeys,
    mask_free_text_value,
    mask_identity_value,
    mask_json,
    personal_keys,
)
from hub.core.settings import Settings

# In a mask tree, the key of a leaf's mask (no response key is empty).
LEAF = ""

MaskTree = dict[str, Any]
"""Response key → a subtree; ``LEAF`` → the kind of mask of the value found there."""

# Kinds masked inside the statement, and kinds masked on the decoded answer.
SQL_KINDS = frozenset({"text"})
PYTHON_KINDS = frozenset({"json", "free_text", "identity"})


def text_mask_sql(expression: str) -> str:
    """``hub.access.masking.mask_text`` in SQL: ``•••`` unless null or empty."""
    return f"CASE WHEN {expression} <> '' THEN '{MASK}'::text ELSE {expression} END"


def identity_sql(kind_expression: str, value_expression: str) -> str:
    """What the statement returns for an identity's value: ``[kind, value]``, for ``apply``."""
    return f"json_build_array({kind_expression}, {value_expression})"


def maskers(
    settings: Settings, keys: PersonalKeys | None = None
) -> dict[str, Callable[[Any], Any]]:
    """The maskers of each kind masked on the decoded answer. ``keys``: the personal keys of one
    request (looked up once for all its JSON values); None: looked up per value (a cached
    lookup), for maskers kept longer than a request, as the vocabulary's personal attributes
    may change."""

    def identity(pair: Any) -> Any:
        kind, value = pair
        return mask_identity_value(str(kind), value)

    def json(value: Any) -> Any:
        return mask_json(value, keys if keys is not None else personal_keys(settings))

    return {"json": json, "free_text": mask_free_text_value, "identity": identity}


def apply(value: Any, tree: MaskTree, masks: dict[str, Callable[[Any], Any]]) -> Any:
    """``value`` (a decoded answer, or part of one) with the masks of ``tree`` applied; lists
    (connections' edges and nodes, relations) are walked item by item."""
    kind = tree.get(LEAF)
    if kind is not None:
        return masks[kind](value)
    if isinstance(value, list):
        return [apply(item, tree, masks) for item in value]
    if isinstance(value, dict):
        for key, subtree in tree.items():
            if key in value:
                value[key] = apply(value[key], subtree, masks)
    return value
