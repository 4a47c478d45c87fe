"""Strawberry's ASGI websocket adapter with a byte cap checked before any JSON parsing.

``hub serve`` also gives uvicorn the same cap (``ws_max_size``), which refuses a message over it
as it arrives; this check holds under any other ASGI server. Either way the connection closes
with 1009 (message too big, RFC 6455): graphql-transport-ws has no per-message error before a
message's id is known, and graphql-ws clients treat 1009 as fatal (no reconnect loop), like
4400. ``docs/security.md`` ("Limits") documents it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from json import JSONDecodeError
from typing import Any

from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived

CLOSE_MESSAGE_TOO_BIG = 1009


def utf8_size_over(text: str, limit: int) -> bool:
    """Whether ``text`` takes more than ``limit`` bytes in UTF-8 (encoded only when in doubt)."""
    if len(text) > limit:
        return True
    if len(text) * 4 <= limit:
        return False
    return len(text.encode("utf-8", "surrogatepass")) > limit


class SizedWebSocketAdapter(ASGIWebSocketAdapter):
    """Messages longer than the view's ``state.settings.ws_max_message_bytes`` close the
    connection (1009) instead of being parsed."""

    async def iter_json(
        self, *, ignore_parsing_errors: bool = False
    ) -> AsyncGenerator[object, None]:
        view: Any = self.view
        limit: int = view.state.settings.ws_max_message_bytes
        try:
            while self.ws.application_state != WebSocketState.DISCONNECTED:
                text = await self.ws.receive_text()
                if utf8_size_over(text, limit):
                    await self.ws.close(
                        code=CLOSE_MESSAGE_TOO_BIG,
                        reason=f"message larger than {limit} bytes",
                    )
                    return
                try:
                    yield self.view.decode_json(text)
                except JSONDecodeError as error:
                    if not ignore_parsing_errors:
                        raise NonJsonMessageReceived from error
        except KeyError as error:
            raise NonTextMessageReceived from error
        except WebSocketDisconnect:
            pass
