"""The SQL renderings of the compiled path equal the Python ones, value by value, in PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.compiled import sql
from hub.core.ids import encode_cursor, to_global_id

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(
    moment=st.one_of(
        st.datetimes(
            min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
        ),
        # Fractions with trailing zeros, which to_json trims and isoformat does not.
        st.builds(
            lambda m, f: m.replace(microsecond=f),
            st.datetimes(
                min_value=datetime(1900, 1, 1),
                max_value=datetime(2100, 1, 1),
                timezones=st.just(UTC),
            ),
            st.sampled_from([0, 1, 10, 100, 120000, 500000, 999990]),
        ),
    ),
    offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
)
async def test_timestamps_render_like_isoformat(
    db: asyncpg.Connection, moment: datetime, offset_minutes: int
) -> None:
    # The session time zone must not matter: the value is rendered in UTC either way.
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    await db.execute(f"SET TIME ZONE INTERVAL '{sign}{hours:02d}:{minutes:02d}' HOUR TO MINUTE")
    local = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    rendered = await db.fetchval(f"SELECT {sql.iso_timestamp('$1::timestamptz')}", local)
    assert rendered == moment.isoformat()
    # The JSON rendering relies on the session time zone, which the compiled pool sets to UTC.
    await db.execute("SET TimeZone = 'UTC'")
    as_json = await db.fetchval(f"SELECT ({sql.json_timestamp('$1::timestamptz')})::text", local)
    assert json.loads(as_json) == moment.isoformat()


@SETTINGS
@given(text=st.text(max_size=120), key=st.uuids())
async def test_ids_and_cursors_render_like_hub_ids(
    db: asyncpg.Connection, text: str, key: object
) -> None:
    text = text.replace("\x00", "")  # PostgreSQL text cannot hold NUL
    cursor = await db.fetchval(
        f"SELECT {sql.cursor([sql.json_text('$1::text'), sql.json_text('$2::text')])}",
        text,
        str(key),
    )
    # encode_cursor(tag, values) writes the JSON array [tag, *values].
    assert cursor == encode_cursor(text, [str(key)])
    for type_name in ("Customer", "Interaction", "Touchpoint", "Conversation", "X", "Ab"):
        for render in (sql.global_id, sql.uuid_global_id):
            rendered = await db.fetchval(f"SELECT {render(type_name, '$1::uuid')}", key)
            assert rendered == to_global_id(type_name, str(key))
    channel = await db.fetchval(f"SELECT {sql.global_id('Channel', '$1::text')}", "PHYSICAL")
    assert channel == to_global_id("Channel", "PHYSICAL")
