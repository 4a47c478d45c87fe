"""The suite's timeouts for the apps and servers it starts."""

from __future__ import annotations

from typing import Any

# Timeouts for the apps and servers the suite starts. On a loaded machine (the suite beside
# `stress --cpu 2`) a correct answer may take longer than the production defaults (5 s pool wait,
# 10 s operation deadline), and a SERVICE_UNAVAILABLE or TIMEOUT there is the machine's fault,
# not the hub's: seen as "cannot check API keys right now" (the key pool's wait) and "the audit
# log cannot be written" at load 8-9. Upper bounds, never asserted as durations. The timeouts
# themselves are tested on apps of their own (test_limits, test_statement_timeouts,
# test_resilience), which set them explicitly.
PATIENT: dict[str, Any] = {
    "operation_timeout_seconds": 120.0,
    "statement_timeout_ms": 120_000,
    "db_pool_timeout_s": 120.0,
}
