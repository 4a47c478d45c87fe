"""The typed per-request context every resolver receives, and the ``Info`` alias."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from typing import TypeAlias

import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.websockets import WebSocket

from hub.access.event_scope import EventScope, scope_for_principal
from hub.access.keys import Principal, Role
from hub.access.row_security import engine_for
from hub.core.settings import Settings
from hub.events.broker import Broker
from hub.events.outbox import StoredEvent
from hub.loaders.registry import Loaders, build_loaders

# Given the kinds a subscription field reads, the events to process, in order, in batches.
EventFeed: TypeAlias = Callable[[Collection[str]], AsyncIterator[list[StoredEvent]]]

# Before a websocket's connection_init is checked, a context acts as nobody: a PARTNER with an
# empty scope sees nothing and may do nothing.
NOBODY = Principal(role=Role.PARTNER, name="unauthenticated")


@dataclass
class Context:
    """Build it with ``Context.build``: the engines follow the principal (``act_as``)."""

    settings: Settings
    # The engines the request uses, derived from the principal by hub.access.row_security: for
    # a PARTNER every connection runs under the row-security role with the key's scope.
    # ``engine`` may be a read replica; ``primary_engine`` is the primary when it is.
    engine: AsyncEngine
    loaders: Loaders
    request: Request | WebSocket | None = None
    # The connection_init payload of a websocket (Strawberry sets it).
    connection_params: dict[str, object] | None = None
    # Anything a later layer (auth, tracing) wants to carry for the request.
    extras: dict[str, object] = field(default_factory=dict)
    # Live events (subscriptions): the process's broker.
    broker: Broker | None = None
    # A webhook's delivery (hub.http.webhooks): the events its subscription reads, one at a
    # time from its own cursor, instead of the broker's live stream.
    event_feed: EventFeed | None = None
    primary_engine: AsyncEngine | None = None
    # Who the request acts as (hub.access.keys); decides masking, scope and permissions
    # (hub.access.policy). Change it only through ``act_as``, which moves the engines along.
    _principal: Principal = NOBODY
    # The unscoped engines the scoped ones derive from (kept for ``act_as`` only).
    _base_engine: AsyncEngine | None = field(default=None, repr=False)
    _base_primary: AsyncEngine | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls,
        engine: AsyncEngine,
        settings: Settings,
        request: Request | WebSocket | None = None,
        principal: Principal = NOBODY,
        primary_engine: AsyncEngine | None = None,
    ) -> Context:
        scoped = engine_for(engine, principal)
        return cls(
            settings=settings,
            engine=scoped,
            loaders=build_loaders(scoped),
            request=request,
            primary_engine=engine_for(primary_engine, principal) if primary_engine else None,
            _principal=principal,
            _base_engine=engine,
            _base_primary=primary_engine,
        )

    @property
    def principal(self) -> Principal:
        return self._principal

    def act_as(self, principal: Principal) -> None:
        """Switch to ``principal`` (a websocket after connection_init): engines and loaders
        are derived again, so they can never belong to someone else."""
        self._principal = principal
        base = self._base_engine
        if base is None:
            raise RuntimeError("a Context made without Context.build cannot change principal")
        self.engine = engine_for(base, principal)
        if self._base_primary is not None:
            self.primary_engine = engine_for(self._base_primary, principal)
        self.loaders = self.fresh_loaders()

    @property
    def management_engine(self) -> AsyncEngine:
        """The hub's own login on the primary, unscoped: ONLY for the hub's management tables
        that hold no customer data (webhook registrations; callers filter by the key
        themselves). Customer data always goes through ``engine``/``writer``."""
        base = self._base_primary or self._base_engine
        if base is None:
            raise RuntimeError("a Context made without Context.build has no management engine")
        return base

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
        return build_loaders(self.engine)


Info: TypeAlias = strawberry.Info[Context, None]
