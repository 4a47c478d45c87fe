"""A real webhook receiver on 127.0.0.1 that verifies every delivery with the official
`standardwebhooks` package (what a partner would run), with a switchable answer status."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Request:
    """One POST as received: its headers, body, and whether the signature verified."""

    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    secrets: list[str] = field(default_factory=list)
    status: int = 200  # what it answers (once the signature verified)
    fail_next: int = 0  # answer this many requests with 503 first, then `status`
    retry_after: str | None = None  # sent with 429/503 answers
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    # Many webhooks on one receiver (bench/webhooks.py): the secret of each URL path.
    secret_by_path: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def delivered(self) -> list[Request]:
        """Requests answered 2xx after verifying, in arrival order."""
        return [r for r in self.requests if r.verified and r.headers.get("x-answered") == "2xx"]

    def verify(self, body: bytes, headers: dict[str, str], path: str = "") -> bool:
        own = self.secret_by_path.get(path)
        for secret in [own] if own else self.secrets:
            with contextlib.suppress(WebhookVerificationError):
                Webhook(secret).verify(body, headers)
                return True
        return False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                path = lines[0].split(" ")[1] if " " in lines[0] else ""
                verified = self.verify(body, headers, path)
                if not verified:
                    status = 400
                elif self.fail_next > 0:
                    self.fail_next -= 1
                    status = 503
                else:
                    status = self.status
                headers["x-answered"] = "2xx" if 200 <= status < 300 else str(status)
                self.requests.append(Request(headers, body, verified))
                extra = f"retry-after: {self.retry_after}\r\n" if self.retry_after else ""
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 2\r\n{extra}\r\nok".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    server = await asyncio.start_server(receiver._handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)
