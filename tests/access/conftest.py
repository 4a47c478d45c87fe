"""Fixtures of the access tests that run against a live server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live_server import Server, start_server

# Throttling is not under test where this is used: hundreds of documents per key in seconds.
UNTHROTTLED = {"rate_limit_per_second": 1_000_000, "rate_limit_burst": 1_000_000}
# Nor is the cost estimate (tests/access/test_limits.py): the authorization walk selects every
# field below a root in one document, and plain lists nested a few levels deep multiply the
# estimate past the default 50,000 although the world holds a handful of rows.
WHOLE_TREES = {"max_query_cost": 1_000_000_000}


@pytest.fixture(scope="module")
def keyed_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A live `hub serve` that needs keys (no development mode), does not throttle them and
    answers whole-tree documents."""
    started = start_server(
        database_url,
        tmp_path_factory.mktemp("keyed"),
        dev_mode="false",
        **UNTHROTTLED,
        **WHOLE_TREES,
    )
    try:
        yield started
    finally:
        started.stop()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
