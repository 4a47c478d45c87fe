"""The typed per-request context every resolver receives, and the ``Info`` alias."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.websockets import WebSocket

from hub.access.event_scope import EventScope, scope_for_principal
from hub.access.keys import Principal, Role
from hub.core.settings import Settings
from hub.events.broker import Broker
from hub.loaders.registry import Loaders, build_loaders

# Before a websocket's connection_init is checked, a context acts as nobody: a PARTNER with an
# empty scope sees nothing and may do nothing.
NOBODY = Principal(role=Role.PARTNER, name="unauthenticated")


@dataclass
class Context:
    engine: AsyncEngine
    settings: Settings
    loaders: Loaders
    request: Request | WebSocket | None = None
    # Who the request acts as (hub.access.keys); decides masking, scope and permissions
    # (hub.access.policy).
    principal: Principal = NOBODY
    # The connection_init payload of a websocket (Strawberry sets it).
    connection_params: dict[str, object] | None = None
    # Anything a later layer (auth, tracing) wants to carry for the request.
    extras: dict[str, object] = field(default_factory=dict)
    # Live events (subscriptions): the process's broker.
    broker: Broker | None = None
    # The primary, when ``engine`` is a read replica (a query routed there by hub.db.replica):
    # anything a query writes (the export audit) goes here.
    primary_engine: AsyncEngine | None = None

    @classmethod
    def build(
        cls,
        engine: AsyncEngine,
        settings: Settings,
        request: Request | WebSocket | None = None,
        principal: Principal = NOBODY,
    ) -> Context:
        return cls(
            engine=engine,
            settings=settings,
            loaders=build_loaders(engine, principal.scope),
            request=request,
            principal=principal,
        )

    @property
    def writer(self) -> AsyncEngine:
        """The engine for writes: always the primary."""
        return self.primary_engine if self.primary_engine is not None else self.engine

    @property
    def event_scope(self) -> EventScope:
        """What this connection's subscriptions may receive: derived from the principal."""
        return scope_for_principal(self.principal)

    def fresh_loaders(self) -> Loaders:
        """New loaders for this principal (websockets: one set per delivered event)."""
        return build_loaders(self.engine, self.principal.scope)


Info: TypeAlias = strawberry.Info[Context, None]
