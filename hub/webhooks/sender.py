"""One webhook HTTP attempt: resolve and check the address, POST to it, read a capped answer.

No redirect is followed (a 3xx is a failed attempt), the response body is read up to
``max_response_bytes``, and the whole attempt is bounded by ``timeout_s``. The request goes to
the address ``resolve_public`` checked (the URL's host is sent as ``Host`` and, for https, as
the TLS server name, so certificates are verified against the name).
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import httpx

from hub.webhooks.safety import UnsafeTarget, parse_url, resolve_public

RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class Attempt:
    """What one attempt gave: ``status_code`` None when no answer came (``error`` says why)."""

    status_code: int | None
    latency_s: float
    error: str | None = None
    retry_after_s: float | None = None
    permanent: bool = False  # the target is refused (unsafe): retrying cannot help

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _target(url: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    parts = urlsplit(url)
    host = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


async def post(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    allow_private: bool,
    timeout_s: float,
    max_response_bytes: int,
) -> Attempt:
    started = time.perf_counter()
    try:
        scheme, host, port = parse_url(url, allow_private)
        addresses = await resolve_public(host, port, allow_private)
    except UnsafeTarget as error:
        return Attempt(None, time.perf_counter() - started, error.message, permanent=True)
    parts = urlsplit(url)
    request_headers = {
        **headers,
        "content-type": "application/json",
        "user-agent": "hub-webhooks/1",
        "host": parts.netloc.rpartition("@")[2],
    }
    extensions = {"sni_hostname": host} if scheme == "https" else {}
    try:
        async with (
            asyncio.timeout(timeout_s),
            client.stream(
                "POST",
                _target(url, addresses[0]),
                content=body,
                headers=request_headers,
                extensions=extensions,
                timeout=timeout_s,
                follow_redirects=False,
            ) as response,
        ):
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= max_response_bytes:
                    break
            latency = time.perf_counter() - started
            wait = (
                retry_after(response.headers.get("retry-after"))
                if response.status_code in RETRY_AFTER_STATUSES
                else None
            )
            failure = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
            return Attempt(response.status_code, latency, failure, wait)
    except (TimeoutError, httpx.TimeoutException):
        return Attempt(None, time.perf_counter() - started, f"timed out after {timeout_s:g} s")
    except httpx.HTTPError as error:
        return Attempt(
            None, time.perf_counter() - started, f"{type(error).__name__}: {error}"[:500]
        )
