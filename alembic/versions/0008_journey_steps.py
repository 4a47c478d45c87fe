"""analytics: journey_steps, stage_entries, conversation_facts: derived rows kept by triggers

Every analytics question about paths (transitions, distinct customers) needs, for each
interaction, the customer's next interaction and whether an earlier/later one of the same kind
exists. Computing that with window functions over a million interactions on every request is
what made ``Query.analytics`` take seconds. ``journey_steps`` stores it, one row per
interaction (docs/analytics.md, "Pre-linked steps"):

- the interaction's node in each grouping (touchpoint, channel, the stage the customer was in)
  and the same for the customer's next interaction, with the gap to it in whole minutes
  (rounded up, so ``gap_minutes <= maxGapMinutes`` is exactly ``gap <= maxGapMinutes``);
- ``tp_next_at`` / ``ch_next_at``: the customer's next interaction at the same touchpoint / on
  the same channel (a row is a customer's last one in a time range when that is past the range);
- ``*_move_prev_at``: the previous move of the customer between the same two nodes;
- ``*_later_min_gap``: the smallest gap of the customer's later moves between the same nodes;
- ``*_later_max_gap``: the largest gap out of the customer's later interactions at the same
  node (``Infinity`` when one of them is the customer's last).

``stage_entries`` does the same for the stage funnel: one row per stage change that is not
LOOPING, with when the customer left the stage, their next entry into the same stage, and their
latest entry into the previous stage (by position) at or before it.

``conversation_facts`` holds, per conversation with an INBOUND interaction, its first INBOUND
(when, touchpoint, channel) and the first OUTBOUND after it (touchpointPerformance).

Statement-level triggers with transition tables keep all three current for EVERY writer (ingest's
one-statement batches, the merge and unmerge UPDATEs, stage changes set by hand, the test
factories, bench loaders) in the same transaction, with one set-based statement per writing
statement: ``journey_steps_refresh(customers)`` recomputes the affected customers' rows and
writes those that changed. ``journey_steps_rebuild()`` recomputes everything
(seeds, which bulk-load with triggers off; ``hub analytics rebuild``; this backfill).

Revision ID: 0008
Revises: 0003

"""

from __future__ import annotations

import re

from alembic import op

revision = "0008"
down_revision = "0003"
branch_labels = None
depends_on = None

# Room on every page (fillfactor 90): a refresh rewrites a few rows of a customer without
# touching an indexed column, and PostgreSQL can then update them in place (HOT).
TABLE = """
CREATE TABLE journey_steps (
    id uuid PRIMARY KEY,
    customer_id uuid NOT NULL,
    at timestamptz NOT NULL,
    next_at timestamptz,
    tp_next_at timestamptz,
    ch_next_at timestamptz,
    ch_move_prev_at timestamptz,
    tp_move_prev_at timestamptz,
    st_move_prev_at timestamptz,
    gap_minutes double precision,
    ch_later_min_gap double precision,
    tp_later_min_gap double precision,
    st_later_min_gap double precision,
    ch_later_max_gap double precision,
    tp_later_max_gap double precision,
    st_later_max_gap double precision,
    touchpoint_id uuid NOT NULL,
    next_touchpoint_id uuid,
    inbound boolean NOT NULL,
    channel_code text NOT NULL,
    next_channel_code text,
    stage text,
    next_stage text
) WITH (fillfactor = 90)
"""

# The rows of ``customers`` (``journey_steps_all()``: of everyone), computed from the base
# tables. The stage of an interaction is the customer's latest non-LOOPING stage change at or
# before it (as hub/analytics.py computed it before this table existed); a customer's path is
# ordered by (at, id). Every window sorts (one per partitioning, about 40 µs per row in all):
# the next-at-same-touchpoint/channel use the same windows as the later-gap columns.
STEPS_OF = """
CREATE FUNCTION journey_steps_of(customers uuid[]) RETURNS SETOF journey_steps
LANGUAGE sql STABLE AS $fn$
WITH stays AS (
    SELECT customer_id, stage, entered_at,
           lead(entered_at) OVER (PARTITION BY customer_id ORDER BY entered_at, id) AS left_at
    FROM stage_history
    WHERE transition <> 'LOOPING' AND (customers IS NULL OR customer_id = ANY(customers))
),
path AS (
    SELECT i.id, i.customer_id, i.occurred_at AS at, i.touchpoint_id, i.channel_code,
           i.direction = 'INBOUND' AS inbound, st.stage
    FROM interactions i
    LEFT JOIN stays st ON st.customer_id = i.customer_id AND st.entered_at <= i.occurred_at
                      AND (st.left_at IS NULL OR i.occurred_at < st.left_at)
    WHERE (customers IS NULL OR i.customer_id = ANY(customers))
),
linked AS (
    SELECT p.*,
           lead(p.at) OVER w AS next_at,
           lead(p.touchpoint_id) OVER w AS next_touchpoint_id,
           lead(p.channel_code) OVER w AS next_channel_code,
           lead(p.stage) OVER w AS next_stage
    FROM path p
    WINDOW w AS (PARTITION BY p.customer_id ORDER BY p.at, p.id)
),
gapped AS (
    SELECT l.*,
           CAST(ceil(extract(epoch FROM l.next_at - l.at) / 60) AS double precision)
               AS gap_minutes,
           coalesce(l.next_stage = l.stage AND l.next_channel_code <> l.channel_code, FALSE)
               AS looping
    FROM linked l
)
SELECT g.id, g.customer_id, g.at, g.next_at, lead(g.at) OVER tp_node, lead(g.at) OVER ch_node,
       CASE WHEN g.next_at IS NOT NULL THEN lag(g.at) OVER ch_move END,
       CASE WHEN g.next_at IS NOT NULL THEN lag(g.at) OVER tp_move END,
       CASE WHEN g.next_stage IS NOT NULL THEN lag(g.at) OVER st_move END,
       g.gap_minutes,
       CASE WHEN g.next_at IS NOT NULL THEN min(g.gap_minutes) OVER (ch_move ROWS BETWEEN
           1 FOLLOWING AND UNBOUNDED FOLLOWING) END,
       CASE WHEN g.next_at IS NOT NULL THEN min(g.gap_minutes) OVER (tp_move ROWS BETWEEN
           1 FOLLOWING AND UNBOUNDED FOLLOWING) END,
       CASE WHEN g.next_stage IS NOT NULL THEN min(g.gap_minutes) OVER (st_move ROWS BETWEEN
           1 FOLLOWING AND UNBOUNDED FOLLOWING) END,
       max(coalesce(g.gap_minutes, 'Infinity')) OVER (ch_node ROWS BETWEEN
           1 FOLLOWING AND UNBOUNDED FOLLOWING),
       max(coalesce(g.gap_minutes, 'Infinity')) OVER (tp_node ROWS BETWEEN
           1 FOLLOWING AND UNBOUNDED FOLLOWING),
       CASE WHEN g.stage IS NOT NULL THEN max(coalesce(g.gap_minutes, 'Infinity')) OVER (st_node
           ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) END,
       g.touchpoint_id, g.next_touchpoint_id, g.inbound, g.channel_code,
       g.next_channel_code, g.stage, g.next_stage
FROM gapped g
WINDOW ch_move AS (PARTITION BY g.customer_id, g.channel_code, g.next_channel_code
                   ORDER BY g.at, g.id),
       tp_move AS (PARTITION BY g.customer_id, g.touchpoint_id, g.next_touchpoint_id
                   ORDER BY g.at, g.id),
       st_move AS (PARTITION BY g.customer_id, g.stage, g.next_stage, g.looping
                   ORDER BY g.at, g.id),
       ch_node AS (PARTITION BY g.customer_id, g.channel_code ORDER BY g.at, g.id),
       tp_node AS (PARTITION BY g.customer_id, g.touchpoint_id ORDER BY g.at, g.id),
       st_node AS (PARTITION BY g.customer_id, g.stage ORDER BY g.at, g.id)
$fn$
"""

COLUMNS = (
    "customer_id, at, next_at, tp_next_at, ch_next_at, ch_move_prev_at, tp_move_prev_at,"
    " st_move_prev_at, gap_minutes, ch_later_min_gap, tp_later_min_gap, st_later_min_gap,"
    " ch_later_max_gap, tp_later_max_gap, st_later_max_gap, touchpoint_id,"
    " next_touchpoint_id,"
    " inbound, channel_code, next_channel_code, stage, next_stage"
)
EXCLUDED = ", ".join(f"EXCLUDED.{c.strip()}" for c in COLUMNS.split(","))

# A refresh recomputes every row of the customers it is given (the rows look both ways: a new
# interaction changes its predecessor's next, the customer's earlier rows at the same touchpoint
# or channel, the later-gap columns of earlier moves), and writes only the rows that changed: for
# an interaction recorded in order, a handful. Unchanged rows are left out before the upsert (an
# ON CONFLICT DO UPDATE ... WHERE would still lock, and so write, each of them). It touches a few
# customers, so compiling it (JIT) would cost far more than running it. It runs with its owner's
# rights (SECURITY DEFINER), so a role that may only insert interactions still keeps the table
# current. Its statement is planned once per session: journey_steps_of has no "all customers"
# branch to plan around.
REFRESH = f"""
CREATE FUNCTION journey_steps_refresh(customers uuid[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET jit = off AS $fn$
DECLARE
    ids uuid[] := ARRAY(SELECT DISTINCT c FROM unnest(customers) AS c
                        WHERE c IS NOT NULL ORDER BY c);
BEGIN
    IF coalesce(cardinality(customers), 0) = 0 THEN
        RETURN;
    END IF;
    -- One refresh of a customer at a time, in id order (no deadlock between two of them): a
    -- writer that did not lock the customer waits here for the other one to commit, and the
    -- statement below then sees its rows.
    PERFORM count(pg_advisory_xact_lock(hashtextextended('hub.analytics:' || c::text, 0)))
    FROM unnest(ids) AS c;
    WITH fresh AS (
        SELECT * FROM journey_steps_of(ids)
    ),
    removed AS (
        DELETE FROM journey_steps j
        WHERE j.customer_id = ANY(ids) AND NOT EXISTS (SELECT FROM fresh f WHERE f.id = j.id)
    )
    INSERT INTO journey_steps AS j
    SELECT f.* FROM fresh f
    WHERE NOT EXISTS (SELECT FROM journey_steps o
                      WHERE o.id = f.id AND ROW(o.*) IS NOT DISTINCT FROM ROW(f.*))
    ON CONFLICT (id) DO UPDATE SET ({COLUMNS}) = ({EXCLUDED});
END
$fn$
"""

STAGE_ENTRIES = """
CREATE TABLE stage_entries (
    id bigint PRIMARY KEY,
    customer_id uuid NOT NULL,
    entered_at timestamptz NOT NULL,
    left_at timestamptz,
    same_next_at timestamptz,
    lower_prev_at timestamptz,
    touchpoint_id uuid,
    stage text NOT NULL,
    channel_code text
)
"""

# The entries of ``customers`` (``stage_entries_all()``: of everyone): stage changes that are
# not LOOPING, with when the customer left (their next entry), their next entry into the same
# stage, and their latest entry into the stage before this one (by position) at or before this
# entry; with the channel of the change and the touchpoint of the interaction that caused it
# (for filters).
STAGE_ENTRIES_OF = """
CREATE FUNCTION stage_entries_of(customers uuid[]) RETURNS SETOF stage_entries
LANGUAGE sql STABLE AS $fn$
WITH e AS (
    SELECT h.id, h.customer_id, h.entered_at, h.stage, h.channel_code, i.touchpoint_id,
           s.position,
           lead(h.entered_at) OVER (PARTITION BY h.customer_id ORDER BY h.entered_at, h.id)
               AS left_at,
           lead(h.entered_at) OVER (PARTITION BY h.customer_id, h.stage
                                    ORDER BY h.entered_at, h.id) AS same_next_at
    FROM stage_history h
    JOIN journey_stages s ON s.code = h.stage
    LEFT JOIN interactions i ON i.id = h.interaction_id
    WHERE h.transition <> 'LOOPING' AND (customers IS NULL OR h.customer_id = ANY(customers))
),
lower AS (
    SELECT e.id, max(p.entered_at) AS lower_prev_at
    FROM e JOIN e p ON p.customer_id = e.customer_id AND p.position = e.position - 1
                   AND p.entered_at <= e.entered_at
    GROUP BY e.id
)
SELECT e.id, e.customer_id, e.entered_at, e.left_at, e.same_next_at, l.lower_prev_at,
       e.touchpoint_id, e.stage, e.channel_code
FROM e LEFT JOIN lower l ON l.id = e.id
$fn$
"""

STAGE_ENTRIES_REFRESH = """
CREATE FUNCTION stage_entries_refresh(customers uuid[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET jit = off AS $fn$
DECLARE
    ids uuid[] := ARRAY(SELECT DISTINCT c FROM unnest(customers) AS c
                        WHERE c IS NOT NULL ORDER BY c);
BEGIN
    IF coalesce(cardinality(customers), 0) = 0 THEN
        RETURN;
    END IF;
    -- One refresh of a customer at a time, in id order (no deadlock between two of them): a
    -- writer that did not lock the customer waits here for the other one to commit, and the
    -- statement below then sees its rows.
    PERFORM count(pg_advisory_xact_lock(hashtextextended('hub.analytics:' || c::text, 0)))
    FROM unnest(ids) AS c;
    WITH fresh AS (
        SELECT * FROM stage_entries_of(ids)
    ),
    removed AS (
        DELETE FROM stage_entries e
        WHERE e.customer_id = ANY(ids) AND NOT EXISTS (SELECT FROM fresh f WHERE f.id = e.id)
    )
    INSERT INTO stage_entries AS e
    SELECT f.* FROM fresh f
    WHERE NOT EXISTS (SELECT FROM stage_entries o
                      WHERE o.id = f.id AND ROW(o.*) IS NOT DISTINCT FROM ROW(f.*))
    ON CONFLICT (id) DO UPDATE SET
        (customer_id, entered_at, left_at, same_next_at, lower_prev_at, touchpoint_id, stage,
         channel_code)
        = (EXCLUDED.customer_id, EXCLUDED.entered_at, EXCLUDED.left_at, EXCLUDED.same_next_at,
           EXCLUDED.lower_prev_at, EXCLUDED.touchpoint_id, EXCLUDED.stage, EXCLUDED.channel_code);
END
$fn$
"""

CONVERSATION_FACTS = """
CREATE TABLE conversation_facts (
    conversation_id uuid PRIMARY KEY,
    asked_at timestamptz NOT NULL,
    answered_at timestamptz,
    touchpoint_id uuid NOT NULL,
    channel_code text NOT NULL
)
"""

# Per conversation with an INBOUND interaction: its first INBOUND (when, where) and the first
# OUTBOUND after it (touchpointPerformance's response times).
CONVERSATION_FACTS_OF = """
CREATE FUNCTION conversation_facts_of(conversations uuid[]) RETURNS SETOF conversation_facts
LANGUAGE sql STABLE AS $fn$
WITH steps AS (
    SELECT i.conversation_id, i.touchpoint_id, i.channel_code, i.direction, i.occurred_at, i.id,
           min(i.occurred_at) FILTER (WHERE i.direction = 'INBOUND')
               OVER (PARTITION BY i.conversation_id) AS asked_at
    FROM interactions i
    WHERE i.conversation_id IS NOT NULL
      AND (conversations IS NULL OR i.conversation_id = ANY(conversations))
)
SELECT conversation_id, asked_at,
       min(occurred_at) FILTER (WHERE direction = 'OUTBOUND' AND occurred_at > asked_at),
       (array_agg(touchpoint_id ORDER BY occurred_at, id)
            FILTER (WHERE direction = 'INBOUND'))[1],
       (array_agg(channel_code ORDER BY occurred_at, id) FILTER (WHERE direction = 'INBOUND'))[1]
FROM steps
WHERE asked_at IS NOT NULL
GROUP BY conversation_id, asked_at
$fn$
"""

CONVERSATION_FACTS_REFRESH = """
CREATE FUNCTION conversation_facts_refresh(conversations uuid[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET jit = off AS $fn$
DECLARE
    ids uuid[] := ARRAY(SELECT DISTINCT c FROM unnest(conversations) AS c
                        WHERE c IS NOT NULL ORDER BY c);
BEGIN
    IF coalesce(cardinality(conversations), 0) = 0 THEN
        RETURN;
    END IF;
    -- One refresh of a conversation at a time, in id order (no deadlock between two of them): a
    -- writer that did not lock the conversation waits here for the other one to commit, and the
    -- statement below then sees its rows.
    PERFORM count(pg_advisory_xact_lock(hashtextextended('hub.analytics:' || c::text, 0)))
    FROM unnest(ids) AS c;
    WITH fresh AS (
        SELECT * FROM conversation_facts_of(ids)
    ),
    removed AS (
        DELETE FROM conversation_facts f
        WHERE f.conversation_id = ANY(ids)
          AND NOT EXISTS (SELECT FROM fresh n WHERE n.conversation_id = f.conversation_id)
    )
    INSERT INTO conversation_facts AS f
    SELECT n.* FROM fresh n
    WHERE NOT EXISTS (SELECT FROM conversation_facts o WHERE o.conversation_id = n.conversation_id
                      AND ROW(o.*) IS NOT DISTINCT FROM ROW(n.*))
    ON CONFLICT (conversation_id) DO UPDATE SET
        (asked_at, answered_at, touchpoint_id, channel_code)
        = (EXCLUDED.asked_at, EXCLUDED.answered_at, EXCLUDED.touchpoint_id, EXCLUDED.channel_code);
END
$fn$
"""

REBUILD = """
CREATE FUNCTION journey_steps_rebuild() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT
SET work_mem = '128MB' SET jit = off AS $fn$
DECLARE
    written bigint;
BEGIN
    TRUNCATE journey_steps, stage_entries, conversation_facts;
    INSERT INTO journey_steps SELECT * FROM journey_steps_all();
    GET DIAGNOSTICS written = ROW_COUNT;
    INSERT INTO stage_entries SELECT * FROM stage_entries_all();
    INSERT INTO conversation_facts SELECT * FROM conversation_facts_all();
    RETURN written;
END
$fn$
"""

# One trigger function per kind of statement; updates (merges, unmerges, corrections) refresh
# old and new owners alike, and only when a column the steps depend on changed (an erasure
# blanks summaries and attributes: nothing to do).
TRIGGER_FUNCTIONS = """
CREATE FUNCTION journey_steps_interactions_inserted() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM journey_steps_refresh(array_agg(customer_id)),
            conversation_facts_refresh(array_agg(conversation_id))
    FROM new_rows;
    RETURN NULL;
END
$fn$;

CREATE FUNCTION journey_steps_interactions_updated() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    customers uuid[];
    conversations uuid[];
BEGIN
    WITH changed AS (
        SELECT o.customer_id AS old_customer, n.customer_id AS new_customer,
               o.conversation_id AS old_conversation, n.conversation_id AS new_conversation,
               (o.customer_id, o.occurred_at, o.touchpoint_id, o.channel_code, o.direction)
               IS DISTINCT FROM
               (n.customer_id, n.occurred_at, n.touchpoint_id, n.channel_code, n.direction)
               AS path_changed,
               (o.conversation_id, o.occurred_at, o.touchpoint_id, o.channel_code, o.direction)
               IS DISTINCT FROM
               (n.conversation_id, n.occurred_at, n.touchpoint_id, n.channel_code, n.direction)
               AS conversation_changed
        FROM old_rows o JOIN new_rows n ON n.id = o.id
    )
    SELECT ARRAY(SELECT old_customer FROM changed WHERE path_changed
                 UNION SELECT new_customer FROM changed WHERE path_changed),
           ARRAY(SELECT old_conversation FROM changed WHERE conversation_changed
                 UNION SELECT new_conversation FROM changed WHERE conversation_changed)
    INTO customers, conversations;
    PERFORM journey_steps_refresh(customers), stage_entries_refresh(customers),
            conversation_facts_refresh(conversations);
    RETURN NULL;
END
$fn$;

CREATE FUNCTION journey_steps_interactions_deleted() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM journey_steps_refresh(array_agg(customer_id)),
            stage_entries_refresh(array_agg(customer_id)),
            conversation_facts_refresh(array_agg(conversation_id))
    FROM old_rows;
    RETURN NULL;
END
$fn$;

CREATE FUNCTION journey_steps_stages_inserted() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM journey_steps_refresh(ids), stage_entries_refresh(ids)
    FROM (SELECT array_agg(customer_id) AS ids FROM new_rows) AS changed;
    RETURN NULL;
END
$fn$;

CREATE FUNCTION journey_steps_stages_updated() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM journey_steps_refresh(ids), stage_entries_refresh(ids)
    FROM (
        SELECT array_agg(c) AS ids FROM (
            SELECT o.customer_id AS c FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE (o.customer_id, o.stage, o.transition, o.entered_at)
                  IS DISTINCT FROM (n.customer_id, n.stage, n.transition, n.entered_at)
            UNION
            SELECT n.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE (o.customer_id, o.stage, o.transition, o.entered_at)
                  IS DISTINCT FROM (n.customer_id, n.stage, n.transition, n.entered_at)
        ) AS moved
    ) AS changed;
    RETURN NULL;
END
$fn$;

CREATE FUNCTION journey_steps_stages_deleted() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM journey_steps_refresh(ids), stage_entries_refresh(ids)
    FROM (SELECT array_agg(customer_id) AS ids FROM old_rows) AS changed;
    RETURN NULL;
END
$fn$;

CREATE FUNCTION journey_steps_truncated() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $fn$
BEGIN
    IF TG_TABLE_NAME = 'interactions' THEN
        TRUNCATE journey_steps, conversation_facts;
    ELSE
        TRUNCATE stage_entries;
        PERFORM journey_steps_refresh(ARRAY(SELECT DISTINCT customer_id FROM journey_steps));
    END IF;
    RETURN NULL;
END
$fn$;
"""

TRIGGERS = """
CREATE TRIGGER journey_steps_interactions_inserted AFTER INSERT ON interactions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journey_steps_interactions_inserted();
CREATE TRIGGER journey_steps_interactions_updated AFTER UPDATE ON interactions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journey_steps_interactions_updated();
CREATE TRIGGER journey_steps_interactions_deleted AFTER DELETE ON interactions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journey_steps_interactions_deleted();
CREATE TRIGGER journey_steps_interactions_truncated AFTER TRUNCATE ON interactions
    FOR EACH STATEMENT EXECUTE FUNCTION journey_steps_truncated();
CREATE TRIGGER journey_steps_stages_inserted AFTER INSERT ON stage_history
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journey_steps_stages_inserted();
CREATE TRIGGER journey_steps_stages_updated AFTER UPDATE ON stage_history
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journey_steps_stages_updated();
CREATE TRIGGER journey_steps_stages_deleted AFTER DELETE ON stage_history
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journey_steps_stages_deleted();
CREATE TRIGGER journey_steps_stages_truncated AFTER TRUNCATE ON stage_history
    FOR EACH STATEMENT EXECUTE FUNCTION journey_steps_truncated();
"""

INDEXES = """
CREATE INDEX ix_journey_steps_customer ON journey_steps (customer_id, at, id);
CREATE INDEX ix_journey_steps_at ON journey_steps (at);
CREATE INDEX ix_journey_steps_touchpoint ON journey_steps (touchpoint_id, at);
CREATE INDEX ix_stage_entries_customer ON stage_entries (customer_id);
CREATE INDEX ix_stage_entries_entered_at ON stage_entries (entered_at);
"""


def _of_and_all(create: str) -> list[str]:
    """``name_of(ids)`` (the rows of those ids) and ``name_all()`` (every row) from one
    definition: separate functions, so that a refresh's cached plan uses the indexes instead of
    planning ``ids IS NULL OR ...`` again on every call."""
    match = re.search(r"CREATE FUNCTION (\w+)_of\((\w+) uuid\[\]\)", create)
    assert match
    name, parameter = match.groups()
    condition = re.compile(rf"\({parameter} IS NULL OR ([\w.]+) = ANY\({parameter}\)\)")
    of = condition.sub(rf"\1 = ANY({parameter})", create)
    every = condition.sub("TRUE", create).replace(f"{name}_of({parameter} uuid[])", f"{name}_all()")
    return [of, every]


def _statements(script: str, end: str) -> list[str]:
    """One statement at a time: the driver prepares each, and a prepared statement holds one."""
    parts = [part.strip() for part in script.split(end)]
    keep = end[:-1] if end != ";" else ""
    return [part + keep for part in parts if part]


def upgrade() -> None:
    # Writers wait until this migration commits (the backfill takes ~45 s per million
    # interactions): a row written after the backfill's snapshot but before the triggers exist
    # would otherwise never reach the derived tables.
    op.execute("LOCK TABLE interactions, stage_history IN SHARE ROW EXCLUSIVE MODE")
    op.execute(TABLE)
    for statement in _of_and_all(STEPS_OF):
        op.execute(statement)
    op.execute(REFRESH)
    op.execute(STAGE_ENTRIES)
    for statement in _of_and_all(STAGE_ENTRIES_OF):
        op.execute(statement)
    op.execute(STAGE_ENTRIES_REFRESH)
    op.execute(CONVERSATION_FACTS)
    for statement in _of_and_all(CONVERSATION_FACTS_OF):
        op.execute(statement)
    op.execute(CONVERSATION_FACTS_REFRESH)
    op.execute(REBUILD)
    for statement in _statements(TRIGGER_FUNCTIONS, "$fn$;"):
        op.execute(statement)
    for statement in _statements(INDEXES, ";"):
        op.execute(statement)
    # Backfill before the triggers exist: one set-based pass over what is already stored.
    op.execute("SELECT journey_steps_rebuild()")
    op.execute("ANALYZE journey_steps")
    op.execute("ANALYZE stage_entries")
    op.execute("ANALYZE conversation_facts")
    for statement in _statements(TRIGGERS, ";"):
        op.execute(statement)


def downgrade() -> None:
    for table, kind in (
        ("interactions", "inserted"),
        ("interactions", "updated"),
        ("interactions", "deleted"),
        ("interactions", "truncated"),
        ("stage_history", "inserted"),
        ("stage_history", "updated"),
        ("stage_history", "deleted"),
        ("stage_history", "truncated"),
    ):
        prefix = "interactions" if table == "interactions" else "stages"
        op.execute(f"DROP TRIGGER journey_steps_{prefix}_{kind} ON {table}")
    for name in (
        "journey_steps_truncated()",
        "journey_steps_stages_deleted()",
        "journey_steps_stages_updated()",
        "journey_steps_stages_inserted()",
        "journey_steps_interactions_deleted()",
        "journey_steps_interactions_updated()",
        "journey_steps_interactions_inserted()",
        "journey_steps_rebuild()",
        "conversation_facts_refresh(uuid[])",
        "conversation_facts_of(uuid[])",
        "conversation_facts_all()",
        "stage_entries_refresh(uuid[])",
        "stage_entries_of(uuid[])",
        "stage_entries_all()",
        "journey_steps_refresh(uuid[])",
        "journey_steps_of(uuid[])",
        "journey_steps_all()",
    ):
        op.execute(f"DROP FUNCTION {name}")
    op.execute("DROP TABLE conversation_facts")
    op.execute("DROP TABLE stage_entries")
    op.execute("DROP TABLE journey_steps")
