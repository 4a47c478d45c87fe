"""analytics refresh in linear time per customer: same rows, no quadratic windows or joins

Three parts of migration 0008's functions grew with the square of one customer's history, which
a busy account (a B2B buyer, a bot, a test identity) reaches: a catch-up after one new
interaction of a customer with 20,000 recomputed for 44 s, holding back every analytics query.

- ``min/max(...) OVER (... ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)`` (the
  ``*_later_*`` columns): the frame's head moves with every row and ``min``/``max`` cannot take
  a row out again, so PostgreSQL re-aggregated the rest of the partition for every row. The
  windows now run in the opposite order (newest first) with frames ``UNBOUNDED PRECEDING AND
  1 PRECEDING``: rows only ever enter the frame, one transition each. ``lead`` and ``lag``
  swap places accordingly.
- the stage of each interaction came from a range join of the customer's interactions with their
  stays (every interaction against every stay): now one time line of stage changes and
  interactions, numbered by how many stage changes precede each moment, the stage taken from
  the change that starts each number.
- ``stage_entries.lower_prev_at`` came from a self-join of a customer's entries (every entry
  against every entry of the stage before): now a running maximum per stage position over the
  entries at or before each one (RANGE frame, so entries at the same moment count, as ``<=``
  did). The journey has five stages (migration 0001's ``journey_stages``), so positions 1 to 4 are
  spelled out, and a CHECK constraint keeps ``journey_stages`` to five positions.

The functions return exactly the rows they returned before (``hub analytics check`` on the
1M-interaction benchmark data after this migration: 0 stale rows; the maintenance tests compare
refreshes with rebuilds and recounts), so nothing is recomputed here.

Revision ID: 0012
Revises: 0011

"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

STEPS_OF = """
CREATE FUNCTION journey_steps_of(customers uuid[]) RETURNS SETOF journey_steps
LANGUAGE sql STABLE AS $fn$
WITH moments AS (
    -- Stage changes (not LOOPING) and interactions in one time line; at the same moment a
    -- change comes first (it applies to an interaction at that moment).
    SELECT h.customer_id, h.entered_at AS at, 0 AS kind, h.id AS change_id,
           CAST(NULL AS uuid) AS id, CAST(h.stage AS text) AS stage,
           CAST(NULL AS uuid) AS touchpoint_id, CAST(NULL AS text) AS channel_code,
           CAST(NULL AS boolean) AS inbound
    FROM stage_history h
    WHERE h.transition <> 'LOOPING' AND (customers IS NULL OR h.customer_id = ANY(customers))
    UNION ALL
    SELECT i.customer_id, i.occurred_at, 1, NULL, i.id, NULL, i.touchpoint_id, i.channel_code,
           i.direction = 'INBOUND'
    FROM interactions i
    WHERE (customers IS NULL OR i.customer_id = ANY(customers))
),
numbered AS (
    SELECT m.*, count(m.change_id) OVER (PARTITION BY m.customer_id
                                         ORDER BY m.at, m.kind, m.change_id
                                         ROWS UNBOUNDED PRECEDING) AS stay
    FROM moments m
),
staged AS (
    -- The change that starts a number sorts first in it (kind 0); before the first change
    -- there is none, and the stage is NULL.
    SELECT n.id, n.customer_id, n.at, n.touchpoint_id, n.channel_code, n.inbound, n.kind,
           first_value(n.stage) OVER (PARTITION BY n.customer_id, n.stay ORDER BY n.kind)
               AS stage
    FROM numbered n
),
path AS (
    SELECT s.id, s.customer_id, s.at, s.touchpoint_id, s.channel_code, s.inbound, s.stage
    FROM staged s
    WHERE s.kind = 1
),
-- From here on every window runs newest first: "next" is lag(), "previous" is lead(), and
-- "every later one" is the frame from the partition's start to the row before.
linked AS (
    SELECT p.*,
           lag(p.at) OVER w AS next_at,
           lag(p.touchpoint_id) OVER w AS next_touchpoint_id,
           lag(p.channel_code) OVER w AS next_channel_code,
           lag(p.stage) OVER w AS next_stage
    FROM path p
    WINDOW w AS (PARTITION BY p.customer_id ORDER BY p.at DESC, p.id DESC)
),
gapped AS (
    SELECT l.*,
           CAST(ceil(extract(epoch FROM l.next_at - l.at) / 60) AS double precision)
               AS gap_minutes,
           coalesce(l.next_stage = l.stage AND l.next_channel_code <> l.channel_code, FALSE)
               AS looping
    FROM linked l
)
SELECT g.id, g.customer_id, g.at, g.next_at, lag(g.at) OVER tp_node, lag(g.at) OVER ch_node,
       CASE WHEN g.next_at IS NOT NULL THEN lead(g.at) OVER ch_move END,
       CASE WHEN g.next_at IS NOT NULL THEN lead(g.at) OVER tp_move END,
       CASE WHEN g.next_stage IS NOT NULL THEN lead(g.at) OVER st_move END,
       g.gap_minutes,
       CASE WHEN g.next_at IS NOT NULL THEN min(g.gap_minutes) OVER (ch_move ROWS BETWEEN
           UNBOUNDED PRECEDING AND 1 PRECEDING) END,
       CASE WHEN g.next_at IS NOT NULL THEN min(g.gap_minutes) OVER (tp_move ROWS BETWEEN
           UNBOUNDED PRECEDING AND 1 PRECEDING) END,
       CASE WHEN g.next_stage IS NOT NULL THEN min(g.gap_minutes) OVER (st_move ROWS BETWEEN
           UNBOUNDED PRECEDING AND 1 PRECEDING) END,
       max(coalesce(g.gap_minutes, 'Infinity')) OVER (ch_node ROWS BETWEEN
           UNBOUNDED PRECEDING AND 1 PRECEDING),
       max(coalesce(g.gap_minutes, 'Infinity')) OVER (tp_node ROWS BETWEEN
           UNBOUNDED PRECEDING AND 1 PRECEDING),
       CASE WHEN g.stage IS NOT NULL THEN max(coalesce(g.gap_minutes, 'Infinity')) OVER (st_node
           ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) END,
       g.touchpoint_id, g.next_touchpoint_id, g.inbound, g.channel_code,
       g.next_channel_code, g.stage, g.next_stage
FROM gapped g
WINDOW ch_move AS (PARTITION BY g.customer_id, g.channel_code, g.next_channel_code
                   ORDER BY g.at DESC, g.id DESC),
       tp_move AS (PARTITION BY g.customer_id, g.touchpoint_id, g.next_touchpoint_id
                   ORDER BY g.at DESC, g.id DESC),
       st_move AS (PARTITION BY g.customer_id, g.stage, g.next_stage, g.looping
                   ORDER BY g.at DESC, g.id DESC),
       ch_node AS (PARTITION BY g.customer_id, g.channel_code ORDER BY g.at DESC, g.id DESC),
       tp_node AS (PARTITION BY g.customer_id, g.touchpoint_id ORDER BY g.at DESC, g.id DESC),
       st_node AS (PARTITION BY g.customer_id, g.stage ORDER BY g.at DESC, g.id DESC)
$fn$
"""

STAGE_ENTRIES_OF = """
CREATE FUNCTION stage_entries_of(customers uuid[]) RETURNS SETOF stage_entries
LANGUAGE sql STABLE AS $fn$
WITH e AS (
    SELECT h.id, h.customer_id, h.entered_at, h.stage, h.channel_code, i.touchpoint_id,
           s.position,
           lead(h.entered_at) OVER (PARTITION BY h.customer_id ORDER BY h.entered_at, h.id)
               AS left_at,
           lead(h.entered_at) OVER (PARTITION BY h.customer_id, h.stage
                                    ORDER BY h.entered_at, h.id) AS same_next_at,
           max(h.entered_at) FILTER (WHERE s.position = 1) OVER at_or_before AS latest_1,
           max(h.entered_at) FILTER (WHERE s.position = 2) OVER at_or_before AS latest_2,
           max(h.entered_at) FILTER (WHERE s.position = 3) OVER at_or_before AS latest_3,
           max(h.entered_at) FILTER (WHERE s.position = 4) OVER at_or_before AS latest_4
    FROM stage_history h
    JOIN journey_stages s ON s.code = h.stage
    LEFT JOIN interactions i ON i.id = h.interaction_id
    WHERE h.transition <> 'LOOPING' AND (customers IS NULL OR h.customer_id = ANY(customers))
    WINDOW at_or_before AS (PARTITION BY h.customer_id ORDER BY h.entered_at
                            RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT e.id, e.customer_id, e.entered_at, e.left_at, e.same_next_at,
       CASE e.position WHEN 2 THEN e.latest_1 WHEN 3 THEN e.latest_2
                       WHEN 4 THEN e.latest_3 WHEN 5 THEN e.latest_4 END,
       e.touchpoint_id, e.stage, e.channel_code
FROM e
$fn$
"""


def _migration_0008() -> ModuleType:
    """0008's module, for its definitions (the downgrade) and its ``_of``/``_all`` splitter."""
    path = Path(__file__).with_name("0008_journey_steps.py")
    spec = importlib.util.spec_from_file_location("journey_steps_0008", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _replace(definitions: list[str]) -> None:
    original = _migration_0008()
    for definition in definitions:
        for statement in original._of_and_all(definition):
            op.execute(statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))


# stage_entries_of spells out positions 1 to 5: a sixth stage must come with a new definition,
# not silently get no ``lower_prev_at``.
FIVE_STAGES = (
    "ALTER TABLE journey_stages ADD CONSTRAINT ck_journey_stages_position"
    " CHECK (position BETWEEN 1 AND 5)"
)


def upgrade() -> None:
    op.execute(FIVE_STAGES)
    _replace([STEPS_OF, STAGE_ENTRIES_OF])


def downgrade() -> None:
    original = _migration_0008()
    _replace([original.STEPS_OF, original.STAGE_ENTRIES_OF])
    op.execute("ALTER TABLE journey_stages DROP CONSTRAINT ck_journey_stages_position")
