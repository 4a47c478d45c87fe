"""analytics maintenance deferred: writers mark customers, analytics catch up before reading

Migration 0008 kept ``journey_steps``, ``stage_entries`` and ``conversation_facts`` current from
statement triggers that recomputed every touched customer inside the writer's transaction. On the
benchmark's data (about 20 interactions per customer) that multiplied the cost of ingest by ten
(batch 4,000 → 333 events/s, single 560 → 307/s, bench.write). Now the triggers only append the
touched customers and conversations to ``analytics_pending`` (an INSERT that never waits: no
unique key), and ``analytics_catch_up()`` recomputes them, coalesced, in one transaction: before
every analytics query (hub.analytics) and every few seconds in the background (hub.app), so the
answers stay exact as of the moment the query starts and ingest pays only for the mark.

Revision ID: 0010
Revises: 0009

"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

PENDING = """
CREATE TABLE analytics_pending (
    id bigserial PRIMARY KEY,
    kind "char" NOT NULL,  -- 'c': a customer's journey_steps and stage_entries; 'v': a conversation
    target uuid NOT NULL
)
"""

# Writers may only have rights on the base tables: the mark runs with the owner's.
MARK = """
CREATE FUNCTION analytics_mark(kind "char", targets uuid[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $fn$
    INSERT INTO analytics_pending (kind, target)
    SELECT DISTINCT kind, t FROM unnest(targets) AS t WHERE t IS NOT NULL
$fn$
"""

# Takes up to ``batch`` committed marks, oldest first (marks of transactions still running stay
# for the next round; two catch-ups at once take different marks: SKIP LOCKED), and recomputes
# each customer and conversation once. Callers loop until it returns 0: short transactions,
# because every open writing transaction holds back live event delivery (the outbox horizon).
CATCH_UP = """
CREATE FUNCTION analytics_catch_up(batch integer DEFAULT 200) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $fn$
DECLARE
    taken_marks bigint;
    customers uuid[];
    conversations uuid[];
BEGIN
    WITH taken AS (
        DELETE FROM analytics_pending
        WHERE id IN (SELECT id FROM analytics_pending ORDER BY id LIMIT batch
                     FOR UPDATE SKIP LOCKED)
        RETURNING kind, target
    )
    SELECT count(*),
           array_agg(DISTINCT target) FILTER (WHERE kind = 'c'),
           array_agg(DISTINCT target) FILTER (WHERE kind = 'v')
    INTO taken_marks, customers, conversations
    FROM taken;
    PERFORM journey_steps_refresh(customers), stage_entries_refresh(customers),
            conversation_facts_refresh(conversations);
    RETURN taken_marks;
END
$fn$
"""

DEFERRED_TRIGGERS = [
    """
CREATE OR REPLACE FUNCTION journey_steps_interactions_inserted() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM analytics_mark('c', array_agg(customer_id)),
            analytics_mark('v', array_agg(conversation_id))
    FROM new_rows;
    RETURN NULL;
END
$fn$
""",
    """
CREATE OR REPLACE FUNCTION journey_steps_interactions_updated() RETURNS trigger
LANGUAGE plpgsql AS $fn$
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
    PERFORM analytics_mark('c', customers), analytics_mark('v', conversations);
    RETURN NULL;
END
$fn$
""",
    """
CREATE OR REPLACE FUNCTION journey_steps_interactions_deleted() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM analytics_mark('c', array_agg(customer_id)),
            analytics_mark('v', array_agg(conversation_id))
    FROM old_rows;
    RETURN NULL;
END
$fn$
""",
    """
CREATE OR REPLACE FUNCTION journey_steps_stages_inserted() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM analytics_mark('c', array_agg(customer_id)) FROM new_rows;
    RETURN NULL;
END
$fn$
""",
    """
CREATE OR REPLACE FUNCTION journey_steps_stages_updated() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM analytics_mark('c', array_agg(c)) FROM (
        SELECT o.customer_id AS c FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE (o.customer_id, o.stage, o.transition, o.entered_at)
              IS DISTINCT FROM (n.customer_id, n.stage, n.transition, n.entered_at)
        UNION
        SELECT n.customer_id FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE (o.customer_id, o.stage, o.transition, o.entered_at)
              IS DISTINCT FROM (n.customer_id, n.stage, n.transition, n.entered_at)
    ) AS moved;
    RETURN NULL;
END
$fn$
""",
    """
CREATE OR REPLACE FUNCTION journey_steps_stages_deleted() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM analytics_mark('c', array_agg(customer_id)) FROM old_rows;
    RETURN NULL;
END
$fn$
""",
]


def upgrade() -> None:
    op.execute(PENDING)
    op.execute(MARK)
    op.execute(CATCH_UP)
    for statement in DEFERRED_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    # Back to 0008's synchronous triggers: recompute what is pending, then restore them.
    op.execute("SELECT analytics_catch_up(NULL)")  # no LIMIT: every mark at once
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name("0008_journey_steps.py")
    spec = importlib.util.spec_from_file_location("journey_steps_0008", path)
    assert spec is not None and spec.loader is not None
    synchronous = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(synchronous)
    for statement in synchronous._statements(synchronous.TRIGGER_FUNCTIONS, "$fn$;"):
        if "journey_steps_truncated" not in statement:
            op.execute(statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    op.execute("DROP FUNCTION analytics_catch_up(integer)")
    op.execute('DROP FUNCTION analytics_mark("char", uuid[])')
    op.execute("DROP TABLE analytics_pending")
