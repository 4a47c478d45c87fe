"""Log output for ``hub serve``: one JSON object per line (default) or plain text.

Configured through uvicorn's ``log_config`` by the CLI, never at import time: a library user or a
test keeps whatever logging it set up.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from hub.ops import tracing

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is a field.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's coloured duplicate of the message
}


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...extra fields, "exception"}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if tracing.ENABLED and "trace_id" not in entry:
            # The span current where the line was logged (hub.ops.tracing): search traces by it.
            ids = tracing.current_ids()
            if ids is not None:
                entry["trace_id"], entry["span_id"] = ids
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # orjson: one line per request is written (the standard library's encoder took about a
        # third of the line's cost); what it cannot hold (an integer over 64 bits, a key that is
        # not a string) goes through the standard library, as before.
        try:
            return orjson.dumps(entry, default=str).decode()
        except TypeError:
            return json.dumps(entry, default=str, ensure_ascii=False)


def server_formatter(log_format: str) -> logging.Formatter:
    """The formatter of the server's handler (``log_config``: ``hub serve``, ``hub demo``), built
    in every server process (uvicorn's workers configure their logging themselves).

    It also stops ``logging`` from recording, per record, the caller's file and line (a walk up
    the stack), the thread, the process and its multiprocessing name: no formatter of the hub
    prints them, and with one line per request they were a fifth of the line's cost in the
    server. Only the server's processes do this (for every logger in them; ``stack_info`` is
    ignored too); a library user keeps their logging as configured."""
    logging._srcfile = None  # the logging HOWTO's "Optimization" section
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if log_format == "json":
        return JsonFormatter()
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def log_config(log_format: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn: its loggers and the hub's, to stderr."""
    formatter: dict[str, Any] = {"()": "hub.ops.logs.server_formatter", "log_format": log_format}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"hub": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "hub",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "hub": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
    }
