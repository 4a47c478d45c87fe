"""row security without a function call per row (issue #15, partner reads)

The partner policies of 0013/0018/0019 called SECURITY DEFINER SQL functions
(``hub_customer_visible``, ``hub_customer_shares``, ...). PostgreSQL never inlines such a function:
every row a partner statement scans paid a function call with its own executor start-up and user
switch. A scenario-1 read (one customer, ~20 interactions, a few identities) spent 0.67 ms in
PostgreSQL as ``hub_partner`` against 0.21 ms as the owner; probing the three reads of 3,000
customers: 0.30 ms of row security per customer, 0.05 ms with the policies below.

The rules are unchanged; they are now written inside the policies, where the planner sees them
as ordinary sub-plans (index probes, no call):

- ``hub_partner_customers``: a view of the customers a partner may see — a granted, unexpired
  PARTNER_SHARING consent for every channel AND an interaction in scope. A view reads its tables
  with its owner's rights (the hub's login, which row security does not restrict), which is what
  the SECURITY DEFINER functions were for: a customer's policy reads consents and interactions,
  whose policies read customers again. Its rows are exactly the customers the partner sees, so
  granting it to ``hub_partner`` reveals nothing more; ``security_barrier`` keeps a caller's own
  conditions from being evaluated on rows it filters out.
- customers and the tables that follow them (identities, consents, consent history, merges as
  survivor, segment members, computed values, events, stage changes): their customer is in it.
- an interaction: its channel or touchpoint is in scope and its customer is in the view (for an
  in-scope interaction, "its customer is visible" and "its customer shares" are the same test).
- a conversation, a stage change's interaction, a computed value's definition: read through the
  partner's own policy on ``interactions`` / ``computed_traits`` (a sub-select from a table with
  row security applies that table's policy), so each rule is written once.
- a computed trait's definition: its filter's channels or touchpoints lie within the scope, read
  from the row itself (the function looked the row up again by key).

Two things these rules now rest on, each guarded by a test (tests/access/test_row_security.py):
the view keeps its owner's rights (owned by the tables' owner, not ``security_invoker``, the
tables not FORCEd) — otherwise partner reads fail (policy recursion) or see nothing, never more;
and each of these tables has exactly one policy for the partner role — a second permissive one
on ``interactions`` or ``computed_traits`` would widen the tables whose rules read through them.

The functions are dropped: nothing else calls them, and a SECURITY DEFINER function executable
by every role answered "does this customer share with partners?" to any caller. The downgrade
restores them and the previous policies.

Revision ID: 0024
Revises: 0023

"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

ROLE = "hub_partner"
VIEW = "hub_partner_customers"

CREATE_VIEW = f"""
CREATE VIEW {VIEW} WITH (security_barrier) AS
    SELECT c.customer_id FROM consents c
    WHERE c.purpose = 'PARTNER_SHARING' AND c.channel = '' AND c.status = 'GRANTED'
      AND (c.expires_at IS NULL OR c.expires_at > now())
      AND EXISTS (
          SELECT FROM interactions i
          WHERE i.customer_id = c.customer_id AND hub_in_scope(i.channel_code, i.touchpoint_id))
"""


def visible(table: str, column: str) -> str:
    """The rule "this row's customer is visible to the partner" for ``table.column``."""
    return f"EXISTS (SELECT FROM {VIEW} v WHERE v.customer_id = {table}.{column})"


TRAIT_IN_SCOPE = """
    (jsonb_typeof(computed_traits.filter -> 'channels') = 'array'
     AND ARRAY(SELECT jsonb_array_elements_text(computed_traits.filter -> 'channels'))
         <@ hub_scope_channels())
    OR (jsonb_typeof(computed_traits.filter -> 'touchpointIds') = 'array'
        AND ARRAY(SELECT jsonb_array_elements_text(computed_traits.filter -> 'touchpointIds'))
            ::uuid[] <@ hub_scope_touchpoints())
"""

POLICIES = {
    "customers": visible("customers", "id"),
    "identities": visible("identities", "customer_id"),
    "consents": visible("consents", "customer_id"),
    "consent_history": visible("consent_history", "customer_id"),
    "merges": visible("merges", "survivor_id"),
    "segment_members": visible("segment_members", "customer_id"),
    "interactions": (
        f"hub_in_scope(channel_code, touchpoint_id) AND {visible('interactions', 'customer_id')}"
    ),
    # The sub-selects below read tables with row security: the partner's policy there applies.
    "conversations": (
        "EXISTS (SELECT FROM interactions i WHERE i.conversation_id = conversations.id)"
    ),
    "stage_history": (
        f"{visible('stage_history', 'customer_id')} AND (stage_history.interaction_id IS NULL"
        " OR EXISTS (SELECT FROM interactions i WHERE i.id = stage_history.interaction_id))"
    ),
    "events": (
        f"{visible('events', 'customer_id')} AND (hub_in_scope(channel_code, touchpoint_id)"
        " OR kind = 'SEGMENT_MEMBERSHIP_CHANGED')"
    ),
    "computed_traits": TRAIT_IN_SCOPE,
    "customer_traits_computed": (
        f"{visible('customer_traits_computed', 'customer_id')} AND EXISTS"
        " (SELECT FROM computed_traits t WHERE t.key = customer_traits_computed.trait_key)"
    ),
}

# 0013's functions, and 0018's, dropped here (0013's helpers for the scope settings stay).
DROPPED = (
    "hub_trait_in_scope(text)",
    "hub_conversation_visible(uuid)",
    "hub_interaction_visible(uuid)",
    "hub_customer_visible(uuid)",
    "hub_customer_shares(uuid)",
)


def _replace_policies(rules: dict[str, str]) -> None:
    for table, rule in rules.items():
        op.execute(f"DROP POLICY partner_scope ON {table}")
        op.execute(f"CREATE POLICY partner_scope ON {table} FOR SELECT TO {ROLE} USING ({rule})")


def upgrade() -> None:
    op.execute(CREATE_VIEW)
    op.execute(f"GRANT SELECT ON {VIEW} TO {ROLE}")
    _replace_policies(POLICIES)
    for signature in DROPPED:
        op.execute(f"DROP FUNCTION {signature}")


def _revision(file_name: str) -> ModuleType:
    """An earlier revision's module (the versions folder is no package), for its definitions."""
    spec = importlib.util.spec_from_file_location(file_name, Path(__file__).with_name(file_name))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade() -> None:
    row_security = _revision("0013_row_security.py")
    traits = _revision("0018_computed_traits.py")
    segments = _revision("0019_segments.py")
    schema = op.get_bind().exec_driver_sql("SELECT quote_ident(current_schema())").scalar()
    # 0013's list starts with the scope helpers, which were never dropped.
    for definition in [*row_security.FUNCTIONS[3:], traits.TRAIT_VISIBLE]:
        op.execute(definition.replace("@.", f"{schema}."))
    previous = {
        **row_security.POLICIES,
        "events": segments.EVENTS_RULE_WITH_SEGMENTS,
        "segment_members": "hub_customer_visible(customer_id)",
        "computed_traits": "hub_trait_in_scope(key)",
        "customer_traits_computed": (
            "hub_customer_visible(customer_id) AND hub_trait_in_scope(trait_key)"
        ),
    }
    _replace_policies(previous)
    op.execute(f"DROP VIEW {VIEW}")
