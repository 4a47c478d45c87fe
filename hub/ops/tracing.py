"""OpenTelemetry tracing, off unless ``HUB_OTEL_ENABLED=true`` (docs/operations.md#tracing).

This module imports nothing from OpenTelemetry, and never ``hub.ops.otel``: while tracing is off,
the rest of the hub pays one ``if tracing.ENABLED`` and the SDK is never loaded. When the setting
is on, ``hub.http.tracing`` loads ``hub.ops.otel``, which sets the SDK up and registers
itself here (``started``): the dependency runs one way, otel -> tracing.

Inner layers leave what the operation span reports in the ASGI scope (``hub.core.request_keys``):
the operation type (``ErrorCodes`` on the resolver path; the compiled paths set their own) and the
error codes of the answer.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from hub.core.request_keys import ERROR_CODES_KEY

SpanIds = Callable[[], "tuple[str, str] | None"]

# True once the SDK is set up in this process; read by the log formatter and the schema
# extension (process-wide, as the SDK's tracer provider is).
ENABLED = False
_current_ids: SpanIds | None = None


def started(current_ids: SpanIds) -> None:
    """``hub.ops.otel`` has set the SDK up: tracing is on, and ``current_ids`` asks it for the
    current span."""
    global ENABLED, _current_ids
    _current_ids = current_ids
    ENABLED = True


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span as hex, or None (none, or tracing off)."""
    return _current_ids() if _current_ids is not None else None


def record_error_codes(scope: MutableMapping[str, Any], errors: list[Any]) -> None:
    """Remember the ``extensions.code`` of an answer's errors for the operation span."""
    codes = scope.setdefault(ERROR_CODES_KEY, [])
    for error in errors:
        extensions = getattr(error, "extensions", None) or {}
        code = extensions.get("code") if isinstance(extensions, dict) else None
        codes.append(code if isinstance(code, str) else "UNKNOWN")
