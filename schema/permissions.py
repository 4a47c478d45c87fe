"""Permission checks and masking for the schema: each is one line on a field.

- ``permission_classes=[IsAdmin]`` / ``[CanWrite]`` / ``[CanUseAnalytics]`` on a field, or
  ``require(info, Role.ADMIN, ...)`` inside a resolver: FORBIDDEN for anyone else.
- ``extensions=[PersonalData()]`` on a field holding personal data: masked (``hub.access.masking``)
  for principals without the ``pii`` scope, on every path that resolves the field (queries,
  ``node``, ``_entities``, subscriptions, analytics drill-downs).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission

from hub.access.keys import Role
from hub.access.masking import mask_identity, mask_keys, mask_text
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


def identity_mask(value: Any, source: Any, context: Context) -> Any:
    kind = getattr(source, "kind", "")
    return mask_identity(str(getattr(kind, "value", kind)), value) if value else value


def traits_mask(value: Any, source: Any, context: Context) -> Any:
    return mask_keys(value, context.settings.personal_traits)


def attributes_mask(value: Any, source: Any, context: Context) -> Any:
    return mask_keys(value, context.settings.personal_attributes)


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


def require_pii(info: Info, what: str) -> None:
    """Filtering or sorting on a personal field would reveal it: only with the ``pii`` scope."""
    if not can_see_pii(info.context.principal):
        raise Forbidden(f"{what} needs a key with the pii scope (it would reveal personal data)")
