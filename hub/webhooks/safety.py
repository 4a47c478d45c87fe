"""Where a webhook may send: https to public addresses, unless HUB_WEBHOOK_ALLOW_PRIVATE.

``check_url`` runs when a webhook is created or changed (scheme, host, literal addresses, and
the name's current addresses); ``resolve_public`` runs before every delivery: the name is
resolved again, EVERY address must be allowed (a name cannot smuggle in a private one beside a
public one) and the request connects to the checked address itself, so a DNS answer that changes
between the check and the connection (rebinding) cannot redirect it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from hub.core.errors import BadUserInput

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2048


class UnsafeTarget(BadUserInput):
    """A URL or address a webhook may not be sent to."""


def address_allowed(address: Address, allow_private: bool) -> bool:
    """Only globally routable addresses (no private, loopback, link-local, shared, reserved,
    multicast), an IPv4-mapped IPv6 address judged as its IPv4 one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if allow_private:
        return not address.is_multicast and not address.is_unspecified
    return address.is_global and not address.is_multicast


def parse_url(url: str, allow_private: bool) -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable URL, else UnsafeTarget (BAD_USER_INPUT)."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeTarget(f"a webhook URL has at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeTarget("the webhook URL is not a valid URL") from None
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed:
        raise UnsafeTarget(
            "a webhook URL must use https"
            + ("" if allow_private else " (http only with HUB_WEBHOOK_ALLOW_PRIVATE=true)")
        )
    if not parts.hostname:
        raise UnsafeTarget("the webhook URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("a webhook URL may not carry credentials")
    if parts.fragment:
        raise UnsafeTarget("a webhook URL may not have a fragment")
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname, port or default


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def resolve_public(host: str, port: int, allow_private: bool) -> list[Address]:
    """The addresses of ``host``, all of them allowed, else UnsafeTarget."""
    literal = _literal(host)
    if literal is not None:
        addresses: list[Address] = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError):
            raise UnsafeTarget(f"the webhook host {host!r} does not resolve") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    refused = [a for a in addresses if not address_allowed(a, allow_private)]
    if refused or not addresses:
        raise UnsafeTarget(
            f"the webhook host {host!r} resolves to a private, loopback or link-local address "
            f"({', '.join(map(str, refused))}); allowed only with HUB_WEBHOOK_ALLOW_PRIVATE=true"
        )
    return addresses


async def check_url(url: str, allow_private: bool) -> None:
    """Creation-time check: the URL's form and where its host points now."""
    _, host, port = parse_url(url, allow_private)
    await resolve_public(host, port, allow_private)
