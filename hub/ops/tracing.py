"""OpenTelemetry tracing, off unless ``HUB_OTEL_ENABLED=true`` (docs/operations.md#tracing).

This module imports nothing from OpenTelemetry: while tracing is off, the rest of the hub pays
one ``if tracing.ENABLED`` and the SDK is never loaded. ``enable()`` (called by ``create_app``
when the setting is on) loads ``hub.ops.otel``, which sets the SDK up once per process.

Inner layers leave what the operation span reports in the ASGI scope, like ``hub.http.observe``'s
keys: the operation type (``ErrorCodes`` on the resolver path; the compiled path answers
queries only) and the error codes of the answer.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

OPERATION_TYPE_KEY = "hub.operation_type"
ERROR_CODES_KEY = "hub.error_codes"
READ_PATH_KEY = "hub.read_path"

# True once ``enable()`` has set the SDK up in this process; read by the log formatter and the
# schema extension (process-wide, as the SDK's tracer provider is).
ENABLED = False


def enable() -> None:
    """Set up the SDK, the exporter and the asyncpg instrumentation (once per process)."""
    global ENABLED
    try:
        from hub.ops import otel
    except ImportError as missing:  # the optional extra is not installed
        raise RuntimeError(
            "HUB_OTEL_ENABLED=true needs the OpenTelemetry packages: pip install 'hub[otel]' "
            f"({missing})"
        ) from missing
    otel.configure()
    ENABLED = True


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span as hex, or None (none, or tracing off)."""
    if not ENABLED:
        return None
    from hub.ops import otel

    return otel.current_ids()


def record_error_codes(scope: MutableMapping[str, Any], errors: list[Any]) -> None:
    """Remember the ``extensions.code`` of an answer's errors for the operation span."""
    codes = scope.setdefault(ERROR_CODES_KEY, [])
    for error in errors:
        extensions = getattr(error, "extensions", None) or {}
        code = extensions.get("code") if isinstance(extensions, dict) else None
        codes.append(code if isinstance(code, str) else "UNKNOWN")
