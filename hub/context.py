"""The typed per-request context every resolver receives, and the ``Info`` alias."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.websockets import WebSocket

from hub.broker import Broker
from hub.event_scope import UNRESTRICTED, EventScope
from hub.settings import Settings
from loaders.registry import Loaders, build_loaders


@dataclass
class Context:
    engine: AsyncEngine
    settings: Settings
    loaders: Loaders
    request: Request | WebSocket | None = None
    # Anything a later layer (auth, tracing) wants to carry for the request.
    extras: dict[str, object] = field(default_factory=dict)
    # Live events (subscriptions): the process's broker and what this connection may see.
    broker: Broker | None = None
    event_scope: EventScope = UNRESTRICTED

    @classmethod
    def build(
        cls, engine: AsyncEngine, settings: Settings, request: Request | WebSocket | None = None
    ) -> Context:
        return cls(engine=engine, settings=settings, loaders=build_loaders(engine), request=request)


Info: TypeAlias = strawberry.Info[Context, None]
