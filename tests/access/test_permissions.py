"""The one-line permission helpers other features use: ``permission_classes=[...]``,
``require(info, ...)`` and ``PersonalData()``, checked on a small schema with the hub's context
and guard (the way analytics and ingest fields will use them)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
import strawberry

from hub.access.event_scope import scope_for_principal
from hub.access.keys import Principal, Role
from hub.context import Context, Info
from hub.core.settings import Settings
from hub.schema.extensions import AccessGuard
from hub.schema.permissions import CanUseAnalytics, CanWrite, IsAdmin, PersonalData, require


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[CanUseAnalytics])
    def analytics(self) -> int:
        return 42

    @strawberry.field(permission_classes=[IsAdmin])
    def secret(self) -> int:
        return 7

    @strawberry.field
    def frontend_only(self, info: Info) -> int:
        require(info, Role.FRONTEND)
        return 1

    @strawberry.field(extensions=[PersonalData()])
    async def name(self) -> str:
        return "Ana"


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=[CanWrite])
    def touch(self) -> bool:
        return True


SCHEMA = strawberry.Schema(query=Query, mutation=Mutation, extensions=[AccessGuard])


async def _run(engine: Any, role: Role, query: str, pii: bool = False) -> Any:
    context = Context.build(
        engine,
        Settings(),
        principal=Principal(role=role, name="t", pii=pii, channels=frozenset({"WEB"})),
    )
    return await SCHEMA.execute(query, context_value=context)


@pytest.mark.parametrize(
    ("role", "allowed"),
    [(Role.ADMIN, True), (Role.ANALYST, True), (Role.FRONTEND, False), (Role.PARTNER, False)],
)
async def test_analytics_permission(engine: Any, role: Role, allowed: bool) -> None:
    result = await _run(engine, role, "{ analytics }")
    if allowed:
        assert result.data == {"analytics": 42}
    else:
        assert result.errors and result.errors[0].extensions["code"] == "FORBIDDEN"


async def test_admin_permission_and_require(engine: Any) -> None:
    assert (await _run(engine, Role.ADMIN, "{ secret }")).data == {"secret": 7}
    denied = await _run(engine, Role.ANALYST, "{ secret }")
    assert denied.errors and denied.errors[0].extensions["code"] == "FORBIDDEN"
    assert (await _run(engine, Role.FRONTEND, "{ frontendOnly }")).data == {"frontendOnly": 1}
    refused = await _run(engine, Role.ADMIN, "{ frontendOnly }")
    assert refused.errors and refused.errors[0].extensions["code"] == "FORBIDDEN"


async def test_personal_data_extension_on_a_resolver(engine: Any) -> None:
    assert (await _run(engine, Role.ANALYST, "{ name }")).data == {"name": "•••"}
    assert (await _run(engine, Role.ANALYST, "{ name }", pii=True)).data == {"name": "Ana"}
    assert (await _run(engine, Role.PARTNER, "{ name }")).data == {"name": "•••"}


async def test_any_mutation_is_guarded_by_role(engine: Any, db: object) -> None:
    assert (await _run(engine, Role.FRONTEND, "mutation { touch }")).data == {"touch": True}
    for role in (Role.ANALYST, Role.PARTNER):
        result = await _run(engine, role, "mutation { touch }")
        assert result.errors and result.errors[0].extensions["code"] == "FORBIDDEN"


async def test_the_guard_refuses_a_source_key_whatever_path_reaches_it(engine: Any) -> None:
    """The gates turn SOURCE keys away from GraphQL; the guard does too, on any operation,
    and their row and event scopes are empty behind that."""
    for query in ("{ name }", "{ secret }", "mutation { touch }"):
        result = await _run(engine, Role.SOURCE, query)
        assert result.data is None, query
        assert [e.extensions for e in result.errors or []] == [{"code": "FORBIDDEN"}], query
    source = Principal(role=Role.SOURCE, name="s", touchpoints=frozenset({uuid.uuid4()}))
    assert source.scope.restricted and not source.scope.channels
    assert not source.scope.touchpoints and not source.sees_pii
    assert not scope_for_principal(source).allows(
        SimpleNamespace(
            kind="INTERACTION_RECORDED",
            channel_code="WEB",
            touchpoint_id=next(iter(source.touchpoints)),
        )
    )
