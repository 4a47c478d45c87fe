"""The websocket handler's contract with Strawberry: what it overrides, what it calls.

``hub.http.ws.HubTransportWSHandler`` subclasses Strawberry's graphql-transport-ws handler and
overrides a few of its methods. A Strawberry release that renames or re-types one of them would
leave the override dead or broken without any error, so the signatures the hub was written
against are pinned here; ``pyproject.toml`` bounds ``strawberry-graphql`` to the versions seen.
When this test fails after an upgrade: read the new base class, adapt ``hub/http/ws.py``, then
update the strings below.
"""

from __future__ import annotations

import asyncio
import inspect
from datetime import timedelta
from typing import Any, cast

import pytest
import strawberry
from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)

from hub.http.ws import HubTransportWSHandler

BASE = BaseGraphQLTransportWSHandler

# Every Strawberry method HubTransportWSHandler overrides, with the base signature it expects.
OVERRIDDEN = {
    "handle": "(self) -> 'None'",
    "shutdown": "(self) -> 'None'",
    "handle_message": "(self, message: 'Message') -> 'None'",
    "send_message": "(self, message: 'Message') -> 'None'",
    "handle_connection_init": "(self, message: 'ConnectionInitMessage') -> 'None'",
    "handle_subscribe": "(self, message: 'SubscribeMessage') -> 'None'",
    # The base's handle_complete calls it as cleanup_operation(operation_id=...).
    "cleanup_operation": "(self, operation_id: 'str') -> 'None'",
}

# Strawberry methods the handler calls without overriding them.
CALLED: dict[tuple[type[Any], str], str] = {
    (BASE, "handle_complete"): "(self, message: 'CompleteMessage') -> 'None'",
    (BASE, "handle_invalid_message"): "(self, error_message: 'str') -> 'None'",
    (AsyncWebSocketAdapter, "close"): "(self, code: int, reason: str) -> None",
    (strawberry.Schema, "stream"): (
        "(self, query: 'str | None', variable_values: 'dict[str, Any] | None' = None,"
        " context_value: 'Any | None' = None, root_value: 'Any | None' = None,"
        " operation_name: 'str | None' = None,"
        " operation_extensions: 'dict[str, Any] | None' = None,"
        " allowed_operation_types: 'Iterable[OperationType] | None' = None) -> 'StreamResult'"
    ),
}


@pytest.mark.parametrize("name", sorted(OVERRIDDEN))
def test_an_overridden_method_keeps_the_signature_the_hub_expects(name: str) -> None:
    assert str(inspect.signature(getattr(BASE, name))) == OVERRIDDEN[name]
    # And the override is still a plain method with the same parameters.
    assert str(inspect.signature(getattr(HubTransportWSHandler, name))) == OVERRIDDEN[name]


@pytest.mark.parametrize(
    ("owner", "name"),
    [pytest.param(owner, name, id=f"{owner.__name__}.{name}") for owner, name in CALLED],
)
def test_a_called_strawberry_method_keeps_its_signature(owner: type[Any], name: str) -> None:
    assert str(inspect.signature(getattr(owner, name))) == CALLED[(owner, name)]


def test_no_override_is_added_without_being_listed() -> None:
    defined = {
        name
        for name, value in vars(HubTransportWSHandler).items()
        if callable(value) or isinstance(value, (staticmethod, classmethod, property))
    }
    overrides = {name for name in defined if hasattr(BASE, name)}
    assert overrides == set(OVERRIDDEN)


def _bare_handler(websocket: object) -> HubTransportWSHandler:
    """A handler that never ran ``handle``: enough to drive single messages through it."""
    return HubTransportWSHandler(
        view=cast(Any, None),
        websocket=cast(Any, websocket),
        context=cast(Any, None),
        root_value=None,
        schema=cast(Any, None),
        connection_init_wait_timeout=timedelta(seconds=1),
    )


async def test_the_base_routes_complete_messages_to_the_hub_cleanup() -> None:
    # The hub relies on the base dispatching `complete` to handle_complete, which calls the
    # overridden cleanup_operation (there is no handle_complete override).
    handler = _bare_handler(websocket=None)
    running = asyncio.create_task(asyncio.Event().wait())  # runs until cancelled
    handler.active = {"op": running}
    await handler.handle_message({"type": "complete", "id": "op"})
    assert handler.active == {}
    # The cancellation takes effect when the task next runs: wait for it to end (bounded).
    await asyncio.wait([running], timeout=10)
    assert running.cancelled()


class _ClosingSocket:
    def __init__(self) -> None:
        self.closed: list[int] = []

    async def close(self, code: int, reason: str) -> None:
        self.closed.append(code)


@pytest.mark.parametrize("message", [[1, 2], 42, {"type": 5}, {"type": "complete", "id": [1]}])
async def test_messages_the_base_would_raise_on_close_the_connection_4400(message: Any) -> None:
    socket = _ClosingSocket()
    handler = _bare_handler(websocket=socket)
    handler.active = {}
    await handler.handle_message(message)
    assert socket.closed == [4400]


def test_the_sized_adapter_overrides_iter_json_as_strawberry_declares_it() -> None:
    """``hub.http.ws_adapter.SizedWebSocketAdapter`` replaces Strawberry's ``iter_json`` (the
    byte cap before parsing) and reads the same ``ws`` attribute its constructor sets."""
    from strawberry.asgi import ASGIWebSocketAdapter

    from hub.http.ws_adapter import SizedWebSocketAdapter

    expected = "(self, *, ignore_parsing_errors: 'bool' = False) -> 'AsyncGenerator[object, None]'"
    assert str(inspect.signature(ASGIWebSocketAdapter.iter_json)) == expected
    assert str(inspect.signature(SizedWebSocketAdapter.iter_json)) == expected
    assert "self.ws = response" in inspect.getsource(ASGIWebSocketAdapter.__init__)
