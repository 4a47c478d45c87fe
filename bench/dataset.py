"""The benchmark's data set: a scratch database filled once and reused while its size matches.

Two sources with the same shape (touchpoints in every channel, customers with identities and a
journey stage, interactions carrying channel and touchpoint):

- ``seed`` (the default): the project's seed generator, ``seeds.demo.seed_demo``, with
  ``activity`` 3.7, which gives about 20 interactions per customer: 100k customers, ~2M
  interactions, as issue #7 asks;
- ``sql``: a deterministic ``generate_series`` filler in this module (100k customers / 1.5M
  interactions in about a minute), for a quick run.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from hub.db.engine import asyncpg_dsn
from hub.db.migrations import upgrade

TOUCHPOINTS_SQL = """
INSERT INTO touchpoints (id, channel_code, name, kind, address, business_line, active)
SELECT md5('touchpoint' || t.n)::uuid, t.channel, t.name, t.kind, t.address, t.line, true
FROM (VALUES
  (1, 'WEB', 'Shop website', 'WEBSITE', 'https://shop.example', 'shop'),
  (2, 'WEB', 'Travel website', 'WEBSITE', 'https://travel.example', 'travel'),
  (3, 'WEB', 'Live chat', 'LIVE_CHAT', 'https://shop.example/chat', 'shop'),
  (4, 'WEB', 'Self-service portal', 'SELF_SERVICE', 'https://my.example', NULL),
  (5, 'MOBILE', 'iOS app', 'MOBILE_APP', 'app.example.ios', NULL),
  (6, 'MOBILE', 'Android app', 'MOBILE_APP', 'app.example.android', NULL),
  (7, 'MOBILE', 'Mobile web', 'MOBILE_WEB', 'https://m.shop.example', 'shop'),
  (8, 'ASSISTED', 'Contact centre', 'VOICE', '+441234567890', NULL),
  (9, 'ASSISTED', 'Support e-mail', 'EMAIL', 'help@example.com', NULL),
  (10, 'ASSISTED', 'Video advice', 'VIDEO', NULL, 'travel'),
  (11, 'SOCIAL', 'WhatsApp Business', 'RICH_MESSAGING', '+441234567891', NULL),
  (12, 'SOCIAL', 'Facebook page', 'SOCIAL_PAGE', 'facebook:example', NULL),
  (13, 'SOCIAL', 'Instagram', 'SOCIAL_PAGE', 'instagram:example', NULL),
  (14, 'PHYSICAL', 'Flagship store', 'STORE', '1 High Street, London', 'shop'),
  (15, 'PHYSICAL', 'Spring fair', 'EVENT', 'Olympia, London', NULL),
  (16, 'OUTBOUND', 'Spring newsletter', 'CAMPAIGN', 'news@example.com', NULL),
  (17, 'OUTBOUND', 'Delivery SMS', 'SMS', '+441234567892', 'shop'),
  (18, 'OUTBOUND', 'Renewal calls', 'VOICE', '+441234567893', 'travel')
) AS t(n, channel, name, kind, address, line)
"""

CUSTOMERS_SQL = """
INSERT INTO customers (id, display_name, traits, current_stage, stage_entered_at, first_seen_at,
                       last_seen_at, created_at, updated_at)
SELECT md5('customer' || g)::uuid,
       'Customer ' || g,
       jsonb_build_object('tier', (ARRAY['bronze', 'silver', 'gold'])[1 + g % 3],
                          'city', (ARRAY['London', 'Berlin', 'Paris', 'Madrid'])[1 + g % 4]),
       (ARRAY['AWARENESS', 'CONSIDERATION', 'PURCHASE', 'POST_PURCHASE', 'RETENTION'])[1 + g % 5],
       timestamptz '2025-06-01' + make_interval(mins => g),
       NULL, NULL,
       timestamptz '2025-01-01' + make_interval(secs => g * 60),
       timestamptz '2025-01-01' + make_interval(secs => g * 60)
FROM generate_series(1, $1::int) AS g
"""

IDENTITIES_SQL = """
INSERT INTO identities (customer_id, kind, value, created_at, last_seen_at)
SELECT md5('customer' || g)::uuid, k.kind,
       CASE k.kind WHEN 'EMAIL' THEN 'customer' || g || '@example.com'
                   WHEN 'PHONE' THEN '+4479' || lpad(g::text, 8, '0')
                   ELSE 'cookie-' || md5('cookie' || g) END,
       timestamptz '2025-01-01' + make_interval(secs => g * 60),
       timestamptz '2025-06-01' + make_interval(secs => g * 60)
FROM generate_series(1, $1::int) AS g
CROSS JOIN (VALUES ('EMAIL'), ('PHONE'), ('COOKIE')) AS k(kind)
WHERE k.kind <> 'PHONE' OR g % 2 = 0
"""

# Customer g gets 5 + (g * 7919 % 21) interactions (5..25, about 15 on average), spread over a
# year; touchpoint, type and direction follow from the row number, so every run is identical.
INTERACTIONS_SQL = """
INSERT INTO interactions (id, customer_id, touchpoint_id, channel_code, occurred_at, type,
                          direction, summary, sentiment, attributes)
SELECT md5('interaction' || g || ':' || k)::uuid,
       md5('customer' || g)::uuid,
       tp.id, tp.channel_code,
       timestamptz '2025-01-01' + make_interval(secs => (g * 7 + k * 86413) % 31536000),
       (ARRAY['PAGE_VIEW', 'PRODUCT_VIEW', 'SEARCH', 'CHAT_MESSAGE', 'EMAIL', 'CALL', 'ORDER',
              'DELIVERY', 'SUPPORT_TICKET', 'CAMPAIGN_SENT', 'STORE_VISIT'])[1 + (g + k) % 11],
       CASE WHEN (g + k) % 4 = 0 THEN 'OUTBOUND' ELSE 'INBOUND' END,
       CASE WHEN (g + k) % 3 = 0 THEN 'Interaction ' || k || ' of customer ' || g END,
       CASE WHEN (g + k) % 5 = 0 THEN ((g + k) % 9 - 4) / 4.0 END,
       jsonb_build_object('n', k)
FROM generate_series(1, $1::int) AS g
CROSS JOIN LATERAL generate_series(1, 5 + (g * 7919) % 21) AS k
JOIN touchpoints tp ON tp.id = md5('touchpoint' || (1 + (g + k * 5) % 18))::uuid
"""

SEEN_SQL = """
UPDATE customers c SET first_seen_at = s.first_at, last_seen_at = s.last_at
FROM (SELECT customer_id, min(occurred_at) AS first_at, max(occurred_at) AS last_at
      FROM interactions GROUP BY customer_id) s
WHERE s.customer_id = c.id
"""


def database_url(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


async def create_database(server_url: str, name: str) -> str:
    connection = await asyncpg.connect(asyncpg_dsn(database_url(server_url, "postgres")))
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return database_url(server_url, name)


async def fill_with_sql(url: str, customers: int) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with connection.transaction():
            await connection.execute(
                "TRUNCATE events, stage_history, interactions, conversations, identities,"
                " customers, touchpoints RESTART IDENTITY CASCADE"
            )
            for label, statement, args in (
                ("touchpoints", TOUCHPOINTS_SQL, ()),
                ("customers", CUSTOMERS_SQL, (customers,)),
                ("identities", IDENTITIES_SQL, (customers,)),
                ("interactions", INTERACTIONS_SQL, (customers,)),
                ("first/last seen", SEEN_SQL, ()),
            ):
                started = time.perf_counter()
                await connection.execute(statement, *args)
                print(f"  {label}: {time.perf_counter() - started:.1f}s", flush=True)
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


async def customer_count(url: str) -> int:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return int(await connection.fetchval("SELECT count(*) FROM customers"))
    finally:
        await connection.close()


BENCH_ACTIVITY = 3.7
"""Seed generator activity for the benchmark: about 20 interactions per customer."""


def seed_generator_available() -> bool:
    return importlib.util.find_spec("hub.seeds.demo") is not None


def _label(source: str) -> str:
    if source == "seed":
        return f"seed source: seeds.demo, activity {BENCH_ACTIVITY}"
    return "sql source: bench/dataset.py"


async def ensure_dataset(
    server_url: str, name: str, customers: int, seed: int, source: str = "auto"
) -> tuple[str, str]:
    """The URL of a migrated database holding the data set (reused when the size matches),
    and where its data came from."""
    url = await create_database(server_url, name)
    await asyncio.to_thread(upgrade, url)
    if source == "auto":
        source = "seed" if seed_generator_available() else "sql"
    label = _label(source)
    if await customer_count(url) == customers and await _recorded_source(url) == label:
        print(f"data set: reusing {customers} customers in {name}", flush=True)
        return url, label
    print(f"data set: filling {name} with {customers} customers ({source})", flush=True)
    if source == "seed":
        from hub.seeds.demo import seed_demo

        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:  # the generator continues after existing customers: start from empty tables
            await connection.execute(
                "TRUNCATE events, stage_history, interactions, conversations, identities,"
                " customers, touchpoints RESTART IDENTITY CASCADE"
            )
        finally:
            await connection.close()
        await seed_demo(url, customers=customers, seed=seed, progress=True, activity=BENCH_ACTIVITY)
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await connection.execute("VACUUM ANALYZE")
        finally:
            await connection.close()
    else:
        await fill_with_sql(url, customers)
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute(f"COMMENT ON DATABASE \"{name}\" IS '{label}'")
    finally:
        await connection.close()
    return url, label


async def _recorded_source(url: str) -> str:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        comment = await connection.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database"
            " WHERE datname = current_database()"
        )
    finally:
        await connection.close()
    return str(comment or "source not recorded")


async def prewarm(url: str) -> None:
    """Read every table and index of the data set once (``pg_prewarm``), so that no server pays
    for cold disk reads that the servers measured after it are spared."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        # In a schema of its own: PostGraphile exposes only `public`.
        await connection.execute(
            "CREATE SCHEMA IF NOT EXISTS bench;"
            " CREATE EXTENSION IF NOT EXISTS pg_prewarm SCHEMA bench"
        )
        started = time.perf_counter()
        pages = await connection.fetchval(
            "SELECT sum(bench.pg_prewarm(c.oid::regclass, 'read')) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i')"
        )
        print(f"data set: {pages} pages read in {time.perf_counter() - started:.1f}s", flush=True)
    finally:
        await connection.close()
