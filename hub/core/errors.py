"""Errors a client can act on: a clear message plus ``extensions.code``.

Resolvers raise these; every other exception is masked by the schema's error extension so no
stack trace or SQL text reaches a client.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError


class HubError(GraphQLError):
    """Base class: subclasses fix the ``extensions.code``."""

    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message, extensions={"code": self.code, **extensions})


class NotFound(HubError):
    code = "NOT_FOUND"


class BadUserInput(HubError):
    code = "BAD_USER_INPUT"


class UnknownCode(BadUserInput):
    """A code that is not in the vocabulary (an interaction type, an identity kind): ``extensions``
    name the vocabulary and the code."""

    code = "UNKNOWN_CODE"


class InvalidAttributes(BadUserInput):
    """Attributes that break their interaction type's JSON Schema: ``extensions.attributePath``."""

    code = "INVALID_ATTRIBUTES"


class Conflict(HubError):
    code = "CONFLICT"


class Forbidden(HubError):
    code = "FORBIDDEN"


class ServiceUnavailable(HubError):
    """The hub cannot serve this now (database unreachable, shutting down): retry shortly,
    possibly on another instance. Always carries ``extensions.retryable: true``."""

    code = "SERVICE_UNAVAILABLE"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message, retryable=True, **extensions)
