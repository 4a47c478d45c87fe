"""Permission checks and masking for the schema: each is one line on a field.

- ``permission_classes=[IsAdmin]`` / ``[CanWrite]`` / ``[CanUseAnalytics]`` on a field, or
  ``require(info, Role.ADMIN, ...)`` inside a resolver: FORBIDDEN for anyone else.
- ``extensions=[PersonalData()]`` on a field holding personal data: masked (``hub.access.masking``)
  for principals without the ``pii`` scope, on every path that resolves the field (queries,
  ``node``, ``_entities``, subscriptions, analytics drill-downs).
- ``metadata=not_personal("why")`` on a String/JSON field that holds no personal data. The schema
  refuses to build (``check_personal_fields``, called by ``hub.graphql``) while any String/JSON
  output field is neither: a new field cannot forget to say.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from graphql import GraphQLObjectType, GraphQLSchema, get_named_type
from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission
from strawberry.types.field import StrawberryField

from hub.access.keys import Role
from hub.access.masking import (
    mask_free_text_value,
    mask_identity_value,
    mask_json,
    mask_text,
    personal_keys,
)
from hub.access.policy import can_see_pii, can_use_analytics, can_write
from hub.context import Context, Info
from hub.core.errors import Forbidden

Masker = Callable[[Any, Any, Context], Any]


def require(info: Info, *roles: Role) -> None:
    """Raise FORBIDDEN unless the request's principal has one of ``roles``."""
    principal = info.context.principal
    if principal.role not in roles:
        allowed = ", ".join(role.value for role in roles)
        raise Forbidden(
            f"this needs one of the roles {allowed}; the key's role is {principal.role}"
        )


class _RolePermission(BasePermission):
    roles: frozenset[Role] = frozenset()
    error_extensions = {"code": "FORBIDDEN"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return self.allowed(info.context)

    def allowed(self, context: Context) -> bool:
        return context.principal.role in self.roles


class IsAdmin(_RolePermission):
    message = "only ADMIN keys may do this"
    roles = frozenset({Role.ADMIN})


class CanWrite(_RolePermission):
    message = "only ADMIN and FRONTEND keys may change customer data"

    def allowed(self, context: Context) -> bool:
        return can_write(context.principal)


class CanUseAnalytics(_RolePermission):
    message = "only ADMIN and ANALYST keys may use analytics"

    def allowed(self, context: Context) -> bool:
        return can_use_analytics(context.principal)


# ---- masking ----


def text_mask(value: Any, source: Any, context: Context) -> Any:
    return mask_text(value)


def identity_mask_by(kind_attribute: str) -> Masker:
    """Masks an identifier value by the kind its object holds in ``kind_attribute``."""

    def mask(value: Any, source: Any, context: Context) -> Any:
        kind = getattr(source, kind_attribute, "")
        return mask_identity_value(str(getattr(kind, "value", kind)), value)

    return mask


identity_mask = identity_mask_by("kind")


def free_text_mask(value: Any, source: Any, context: Context) -> Any:
    """Short business text (a ticket key, an outcome): only the identifiers in it are masked."""
    return mask_free_text_value(value)


def json_mask(value: Any, source: Any, context: Context) -> Any:
    """Personal keys at any depth and identifier-shaped text (``hub.access.masking.mask_json``)."""
    return mask_json(value, personal_keys(context.settings))


class PersonalData(FieldExtension):
    """Masks the field's value for principals without the ``pii`` scope."""

    def __init__(self, mask: Masker = text_mask) -> None:
        self.mask = mask

    def _apply(self, value: Any, source: Any, info: Info) -> Any:
        context = info.context
        if can_see_pii(context.principal):
            return value
        return self.mask(value, source, context)

    def resolve(self, next_: Callable[..., Any], source: Any, info: Info, **kwargs: Any) -> Any:
        return self._apply(next_(source, info, **kwargs), source, info)

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Info, **kwargs: Any
    ) -> Any:
        return self._apply(await next_(source, info, **kwargs), source, info)


# How each mask is named to paths that mask outside Strawberry's execution (the compiled read
# path, hub.compiled.masks): a mask missing here is unknown to them, and they leave its field
# to the resolvers.
MASK_KINDS: dict[Masker, str] = {
    text_mask: "text",
    identity_mask: "identity",
    free_text_mask: "free_text",
    json_mask: "json",
}


def personal_field_masks(schema: GraphQLSchema) -> dict[tuple[str, str], str]:
    """``(type, field)`` → the kind of mask (``MASK_KINDS``, ``"other"`` for any other mask) of
    every output field declared ``PersonalData``."""
    masks: dict[tuple[str, str], str] = {}
    for type_name, graphql_type in schema.type_map.items():
        if type_name.startswith("__") or not isinstance(graphql_type, GraphQLObjectType):
            continue
        for field_name, field in graphql_type.fields.items():
            definition = (field.extensions or {}).get("strawberry-definition")
            for extension in getattr(definition, "extensions", None) or ():
                if isinstance(extension, PersonalData):
                    masks[type_name, field_name] = MASK_KINDS.get(extension.mask, "other")
    return masks


def require_pii(info: Info, what: str) -> None:
    """Filtering or sorting on a personal field would reveal it: only with the ``pii`` scope."""
    if not can_see_pii(info.context.principal):
        raise Forbidden(f"{what} needs a key with the pii scope (it would reveal personal data)")


# ---- masking by construction ----

NOT_PERSONAL = "hub.not_personal"
# The types whose text fields are checked: every output type but GraphQL's and Federation's own.
_UNCHECKED_TYPES = frozenset({"_Service"})
_TEXT_TYPES = frozenset({"String", "JSON"})


def not_personal(reason: str) -> dict[str, str]:
    """``strawberry.field(metadata=not_personal("why"))``: a text field declared free of
    personal data, with the reason a reviewer reads."""
    return {NOT_PERSONAL: reason}


def undeclared_text_fields(schema: GraphQLSchema) -> list[str]:
    """Every ``Type.field`` of type String or JSON (or lists of them) on an output type that is
    neither masked (``PersonalData``) nor declared ``not_personal``."""
    missing = []
    for type_name, graphql_type in sorted(schema.type_map.items()):
        if type_name.startswith("__") or type_name in _UNCHECKED_TYPES:
            continue
        if not isinstance(graphql_type, GraphQLObjectType):
            continue
        for field_name, field in sorted(graphql_type.fields.items()):
            if get_named_type(field.type).name not in _TEXT_TYPES:
                continue
            definition = (field.extensions or {}).get("strawberry-definition")
            if definition is None or not _declared(definition):
                missing.append(f"{type_name}.{field_name}")
    return missing


def _declared(field: StrawberryField) -> bool:
    if any(isinstance(extension, PersonalData) for extension in field.extensions):
        return True
    metadata: Mapping[str, Any] = field.metadata or {}
    reason = metadata.get(NOT_PERSONAL)
    return isinstance(reason, str) and bool(reason.strip())


def check_personal_fields(schema: GraphQLSchema) -> None:
    """Refuse to build a schema with a text field that neither masks nor says why it need not."""
    missing = undeclared_text_fields(schema)
    if missing:
        raise UndeclaredPersonalData(
            "every String/JSON output field must be masked (extensions=[PersonalData(...)]) or "
            "declared not personal (metadata=not_personal('why')); undeclared: "
            + ", ".join(missing)
        )


class UndeclaredPersonalData(TypeError):
    """A schema whose text fields do not all say whether they hold personal data."""
