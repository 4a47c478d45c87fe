"""Test fixtures: a real PostgreSQL, a fresh database per test run, tables emptied per test.

The server is the embedded one (pgserver, in ``.pgdata-test/``) unless ``HUB_TEST_DATABASE_URL``
names another (``postgresql://postgres@127.0.0.1:5432/postgres``); either way the run creates its
own database, migrates it with Alembic, and drops it at the end. Under pytest-xdist every worker
process does so for itself (the embedded server is shared: pgserver counts the processes using
it and stops it after the last).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from sqlalchemy import event
from starlette.applications import Starlette

from hub.access.keys import Role, create_key
from hub.app import create_app
from hub.core.settings import Settings
from hub.db.engine import asyncpg_dsn
from hub.db.migrations import upgrade
from hub.seeds.taxonomy import STAGE_RULE_ROWS
from hub.sources.mapping import DEFAULT_EVENT_MAPPINGS
from tests.driver_statements import count_driver_statements  # noqa: F401  (a fixture)
from tests.patience import PATIENT

ROOT = Path(__file__).resolve().parent.parent
DATA_TABLES = [
    "audience_queue",
    "customer_traits_computed",
    "computed_traits",
    "webhook_deliveries",
    "webhooks",
    "analytics_pending",
    "merges",
    "events",
    "stage_history",
    "interactions",  # its TRUNCATE trigger empties journey_steps (migration 0008)
    "conversations",
    "identities",
    "customers",
    "touchpoints",
    "consent_history",
    "consents",
    "erasures",
    "audit_log",
    "api_keys",
    "source_rejections",
    "source_unmapped_events",
    "trusted_documents",
    "segments",  # CASCADE: segment_members, segment_checks
]


# The longest files (a few minutes of the suite's total between them: wheel builds, replicas,
# pairs of servers, subprocesses), collected first so that pytest-xdist (scripts/test,
# --dist loadfile) starts them first instead of leaving one of them for the end of the run.
# The order of the other files, and of the tests in each file, is unchanged.
LONGEST_FIRST = [
    "packaging/test_wheel.py",
    "subscriptions/test_delivery.py",
    "ops/test_resilience.py",
    "sources/test_import_export.py",
    "reads/test_replica.py",
    "webhooks/test_delivery.py",
    "reads/test_runtime.py",
    "access/test_generated_authorization.py",
    "reads/test_filters.py",
    "http/test_browser.py",
    "events/test_broker_redis.py",
    "reads/test_errors.py",
    "webhooks/test_api.py",
    "seeds/test_seeds.py",
    "subscriptions/test_connection.py",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: n for n, name in enumerate(LONGEST_FIRST)}
    here = Path(__file__).parent

    def key(item: pytest.Item) -> int:
        try:
            name = item.path.relative_to(here).as_posix()
        except ValueError:
            return len(rank)
        return rank.get(name, len(rank))

    items.sort(key=key)  # stable: each file's tests keep their order


def _server_url() -> str:
    configured = os.environ.get("HUB_TEST_DATABASE_URL")
    if configured:
        return configured
    import pgserver

    data_dir = ROOT / ".pgdata-test"
    # "stop": pgserver stops this PostgreSQL when the test process exits (atexit).
    server = pgserver.get_server(str(data_dir), cleanup_mode="stop")
    return str(server.get_uri())


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


@pytest.fixture(scope="session")
def drop_at_exit() -> Iterator[list[str]]:
    """Names of scratch databases a test created on the test server (``hub demo``'s, the
    wheel's, a migration test's), dropped when this worker's session ends rather than at once:
    DROP DATABASE waits for a checkpoint, and mid-suite beside `stress --cpu 2` that wait took
    over two minutes (pg_stat_activity: wait event CheckpointStart)."""
    names: list[str] = []
    yield names
    if not names:
        return
    import asyncio

    async def drop() -> None:
        url = _with_database(_server_url(), "postgres")
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            for name in names:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(drop())


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    import asyncio

    server_url = _server_url()
    # One database per test process: under pytest-xdist (scripts/test runs `-n`) each worker
    # ("gw0", "gw1", ...) has its own, so workers never see each other's rows.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"hub_test_{worker}_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(asyncpg_dsn(_with_database(server_url, "postgres")))
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = _with_database(server_url, name)
    upgrade(url)
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    # Webhooks are delivered by real `hub serve` processes in tests/webhooks: the in-process
    # app delivers none (its worker would compete with them for the leases).
    # Nor does it sweep computed traits or segment windows: tests/audiences move the clock
    # (`sweep(conn, now=...)`) and start a sweeping `hub serve` of their own. Nor drain the
    # audiences queue: tests/audiences drain it themselves (`hub.audiences.queue.settled`), and
    # their `hub serve` processes drain it in the background.
    # The vocabulary's background check (hub.vocabulary.registry.refresh_forever) is off: it would
    # run statements on the engine whose statements tests count; ingest checks it anyway.
    # Patient timeouts: on a loaded machine (the suite beside `stress --cpu 2`) a correct answer
    # may take longer than the production defaults, and a TIMEOUT there would be the machine's
    # fault, not the hub's (a clean-clone run at load 11 timed out a README example this way).
    # The timeouts themselves are tested on apps of their own (test_limits,
    # test_statement_timeouts).
    return Settings(
        database_url=database_url,
        migrate_on_start=False,
        webhooks_enabled=False,
        audiences_sweep_s=0,
        audiences_drain_ms=0,
        vocabulary_refresh_s=0,
        **PATIENT,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
def engine(app: Starlette) -> Any:
    return app.state.hub.running.engine


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A raw asyncpg connection to the test database; every data table starts empty."""
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    await connection.execute(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY CASCADE")
    # The journey engine's rules are editable data too: every test starts from the defaults.
    await connection.execute("DELETE FROM stage_rules")
    await connection.executemany(
        "INSERT INTO stage_rules (interaction_type, channel_code, stage) VALUES ($1, $2, $3)",
        [(r["interaction_type"], r["channel_code"], r["stage"]) for r in STAGE_RULE_ROWS],
    )
    # So are the tracking API's event mappings (hub.sources.mapping).
    await connection.execute("DELETE FROM source_event_mappings")
    await connection.executemany(
        "INSERT INTO source_event_mappings (event, interaction_type, direction)"
        " VALUES ($1, $2, $3)",
        [(e, t.value, d.value) for e, t, d in DEFAULT_EVENT_MAPPINGS],
    )
    # And the vocabulary (hub.vocabulary): the seeded types and kinds, as migration 0020 left
    # them; the version bump makes every process's snapshot read it again.
    await connection.execute(
        "DELETE FROM interaction_types WHERE NOT built_in;"
        " UPDATE interaction_types SET attributes_schema = NULL, personal_attributes = '{}'"
        "  WHERE attributes_schema IS NOT NULL OR personal_attributes <> '{}';"
        " DELETE FROM identity_kinds WHERE NOT built_in;"
        " DELETE FROM touchpoint_kinds WHERE NOT built_in;"
        " DELETE FROM consent_purposes WHERE NOT built_in;"
        " UPDATE vocabulary_version SET version = version + 1"
    )
    try:
        yield connection
    finally:
        await connection.close()


async def make_key(engine: Any, role: str, **scopes: Any) -> str:
    """A fresh API key (hub.access.keys.create_key) with a unique name; returns the secret."""
    async with engine.begin() as connection:
        created = await create_key(
            connection,
            name=f"test-{role.lower()}-{uuid.uuid4().hex[:8]}",
            role=Role(role),
            **scopes,
        )
    return created.key


@pytest.fixture
async def client(
    app: Starlette, db: asyncpg.Connection, engine: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client to the app that authenticates as ADMIN (which sees personal data)."""
    key = await make_key(engine, "ADMIN")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://hub.test",
        headers={"Authorization": f"Bearer {key}"},
    ) as http:
        yield http


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def __call__(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        body = await self(query, variables)
        assert "errors" not in body, body["errors"]
        return body["data"]

    async def error(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = await self(query, variables)
        assert body.get("errors"), f"expected an error, got {body}"
        error: dict[str, Any] = body["errors"][0]
        assert "Traceback" not in str(body) and "SELECT" not in error["message"]
        return error


@pytest.fixture
def graphql_client() -> Callable[[httpx.AsyncClient], GraphQLClient]:
    """How ``gql`` and ``gql_as`` wrap their HTTP clients (tests/audiences: clients that drain
    the audiences queue after each request)."""
    return GraphQLClient


@pytest.fixture
def gql(
    client: httpx.AsyncClient, graphql_client: Callable[[httpx.AsyncClient], GraphQLClient]
) -> GraphQLClient:
    return graphql_client(client)


@pytest.fixture
async def gql_as(
    app: Starlette,
    db: asyncpg.Connection,
    engine: Any,
    graphql_client: Callable[[httpx.AsyncClient], GraphQLClient],
) -> AsyncIterator[Callable[..., Awaitable[GraphQLClient]]]:
    """``await gql_as("PARTNER", channels=["WEB"])``: a client with a new key of that role
    (keyword arguments as ``hub.access.keys.create_key``: pii, channels, touchpoints)."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(role: str, **scopes: Any) -> GraphQLClient:
            key = await make_key(engine, role, **scopes)
            http = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app),
                    base_url="http://hub.test",
                    headers={"Authorization": f"Bearer {key}"},
                )
            )
            return graphql_client(http)

        yield make


@pytest.fixture
def app_with(
    settings: Settings, db: asyncpg.Connection
) -> Callable[..., contextlib.AbstractAsyncContextManager[tuple[httpx.AsyncClient, Any]]]:
    """``async with app_with(max_aliases=1) as (http, engine)``: an app with other settings (no
    default key: make one with ``make_key(engine, ROLE)``)."""

    @contextlib.asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
        application = create_app(settings.model_copy(update=overrides))
        async with application.router.lifespan_context(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
                yield http, application.state.hub.running.engine

    return make


class StatementCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)

    def report(self) -> str:
        return "\n---\n".join(self.statements)


@pytest.fixture
def count_statements(engine: Any) -> Iterator[StatementCounter]:
    """Counts the SQL statements the app runs (strawberry-django's ``assert_num_queries``)."""
    counter = StatementCounter()
    event.listen(engine.sync_engine, "before_cursor_execute", counter)
    yield counter
    event.remove(engine.sync_engine, "before_cursor_execute", counter)
