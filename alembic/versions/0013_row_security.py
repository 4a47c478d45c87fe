"""row security: partner scope enforced by PostgreSQL (row-level security), fail-closed

A PARTNER key's reads run under the NOLOGIN role ``hub_partner`` (``hub.access.row_security``
switches a checked-out connection to it and sets the key's scope). That role may only SELECT the
tables a partner read touches, and on every table holding customer data a policy lets it see a
row only when the per-session settings ``hub.channels`` / ``hub.touchpoints`` put it in scope:

- an interaction: its channel or touchpoint is in scope, and its customer shares with partners;
- a customer ("shares with partners" = a granted, unexpired PARTNER_SHARING consent for every
  channel, as ``hub.privacy.consent.consent_granted``): it has an interaction in scope AND it
  shares; its identities, consents, consent history and merges (as survivor) follow it;
- a conversation: one of its interactions is visible; a stage change: its customer is visible and
  its causing interaction (if any) is in scope; an event: its customer is visible and its
  channel/touchpoint in scope (an event on no channel, a merge, is not).

No setting, or an empty one, means an empty scope: nothing is visible (fail closed). The rules
live in SQL functions so each policy reads in one line. Those that query tables are SECURITY
DEFINER (they run as the tables' owner, whom row security does not restrict): a customer's policy
reads interactions and consents, whose policies read customers again; as the owner the rule is
evaluated once, with no policy recursion. They name every object with its schema rather than
carry a ``SET search_path`` (a setting saved and restored per call, per row, doubled a count's
cost). Their cost per row is index lookups: ``ix_interactions_customer_path`` (customer_id …
INCLUDE channel_code, touchpoint_id) and ``uq_consents_key`` (customer_id, purpose, channel).

The hub's own login owns the tables (row security does not apply to the owner unless FORCEd,
which it is not): other roles pay nothing. The analytics tables, the key table, the audit log and
the erasures are not granted at all; the analytics tables (they hold customer rows) also get row
security with no policy, so a role that is granted them later still sees nothing. The only write
a partner connection may do is appending to the audit log (a refused mutation is audited on the
request's own connection), never reading it: the audit insert asks for no RETURNING.

The role is cluster-wide and may already exist (another database of the same server, or created
by a DBA): it is created only if absent, and the downgrade leaves it (see docs/deploy.md).

Revision ID: 0013
Revises: 0012

"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

ROLE = "hub_partner"

# Tables a partner read may touch; the reference tables carry no customer data.
REFERENCE_TABLES = ("channels", "journey_stages", "touchpoints", "stage_rules")

# Customer-data tables and the one-line rule of each.
POLICIES = {
    "customers": "hub_customer_visible(id)",
    "identities": "hub_customer_visible(customer_id)",
    "consents": "hub_customer_visible(customer_id)",
    "consent_history": "hub_customer_visible(customer_id)",
    "merges": "hub_customer_visible(survivor_id)",
    "interactions": (
        "hub_in_scope(channel_code, touchpoint_id) AND hub_customer_shares(customer_id)"
    ),
    "conversations": "hub_conversation_visible(id)",
    "stage_history": (
        "hub_customer_visible(customer_id)"
        " AND (interaction_id IS NULL OR hub_interaction_visible(interaction_id))"
    ),
    "events": ("hub_customer_visible(customer_id) AND hub_in_scope(channel_code, touchpoint_id)"),
}

# Customer rows never granted to the partner role: row security with no policy = no rows.
CLOSED_TABLES = ("journey_steps", "stage_entries", "conversation_facts", "analytics_pending")

CREATE_ROLE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
        CREATE ROLE {ROLE} NOLOGIN;
    END IF;
EXCEPTION
    -- another database of the same server migrating at the same moment created it
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$
"""

# The hub's login switches to the role (SET ROLE): a superuser may anyway; any other login needs
# to be a member (it has ADMIN on the role if it created it; else a DBA grants it).
JOIN_ROLE = f"""
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, '{ROLE}', 'MEMBER') THEN
        EXECUTE format('GRANT %I TO %I', '{ROLE}', current_user);
    END IF;
END
$$
"""

# "@." stands for the hub's schema (qualified at upgrade): the SECURITY DEFINER functions name
# every object with its schema instead of carrying a ``SET search_path`` clause, which would
# save and restore a setting on every call (per row: it doubled the cost of a count).
SHARES = """EXISTS (
            SELECT FROM @.consents c
            WHERE c.customer_id = {customer} AND c.purpose = 'PARTNER_SHARING' AND c.channel = ''
              AND c.status = 'GRANTED' AND (c.expires_at IS NULL OR c.expires_at > now()))"""

FUNCTIONS = [
    # The scope, parsed once per call (STABLE): the settings hold comma-separated values.
    """
    CREATE FUNCTION @.hub_scope_channels() RETURNS text[] LANGUAGE sql STABLE AS $$
        SELECT coalesce(string_to_array(nullif(current_setting('hub.channels', true), ''), ','),
                        '{}'::text[])
    $$
    """,
    """
    CREATE FUNCTION @.hub_scope_touchpoints() RETURNS uuid[] LANGUAGE sql STABLE AS $$
        SELECT coalesce(
            string_to_array(nullif(current_setting('hub.touchpoints', true), ''), ',')::uuid[],
            '{}'::uuid[])
    $$
    """,
    """
    CREATE FUNCTION @.hub_in_scope(channel text, touchpoint uuid) RETURNS boolean
    LANGUAGE sql STABLE AS $$
        SELECT coalesce(channel = ANY (@.hub_scope_channels())
                        OR touchpoint = ANY (@.hub_scope_touchpoints()), false)
    $$
    """,
    f"""
    CREATE FUNCTION @.hub_customer_shares(customer uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER AS $$
        SELECT {SHARES.format(customer="customer")}
    $$
    """,
    f"""
    CREATE FUNCTION @.hub_customer_visible(customer uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER AS $$
        SELECT {SHARES.format(customer="customer")} AND EXISTS (
            SELECT FROM @.interactions i
            WHERE i.customer_id = customer AND @.hub_in_scope(i.channel_code, i.touchpoint_id))
    $$
    """,
    f"""
    CREATE FUNCTION @.hub_interaction_visible(interaction uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER AS $$
        SELECT EXISTS (
            SELECT FROM @.interactions i
            WHERE i.id = interaction AND @.hub_in_scope(i.channel_code, i.touchpoint_id)
              AND {SHARES.format(customer="i.customer_id")})
    $$
    """,
    f"""
    CREATE FUNCTION @.hub_conversation_visible(conversation uuid) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER AS $$
        SELECT EXISTS (
            SELECT FROM @.interactions i
            WHERE i.conversation_id = conversation
              AND @.hub_in_scope(i.channel_code, i.touchpoint_id)
              AND {SHARES.format(customer="i.customer_id")})
    $$
    """,
]

FUNCTION_NAMES = (
    "hub_conversation_visible(uuid)",
    "hub_interaction_visible(uuid)",
    "hub_customer_visible(uuid)",
    "hub_customer_shares(uuid)",
    "hub_in_scope(text, uuid)",
    "hub_scope_touchpoints()",
    "hub_scope_channels()",
)


def upgrade() -> None:
    op.execute(CREATE_ROLE)
    op.execute(JOIN_ROLE)
    # PostgreSQL 15+ no longer lets every role use a new schema: the hub's schema, explicitly.
    op.execute(
        "DO $$ BEGIN EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(),"
        f" '{ROLE}'); END $$"
    )
    schema = op.get_bind().exec_driver_sql("SELECT quote_ident(current_schema())").scalar()
    for definition in FUNCTIONS:
        op.execute(definition.replace("@.", f"{schema}."))
    for name in REFERENCE_TABLES:
        op.execute(f"GRANT SELECT ON {name} TO {ROLE}")
    for name, rule in POLICIES.items():
        op.execute(f"GRANT SELECT ON {name} TO {ROLE}")
        op.execute(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY partner_scope ON {name} FOR SELECT TO {ROLE} USING ({rule})")
    for name in CLOSED_TABLES:
        op.execute(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")
    # A subscription's resume cursor is checked against the outbox sequence's position.
    op.execute(f"GRANT SELECT ON SEQUENCE events_id_seq TO {ROLE}")
    op.execute(f"GRANT INSERT ON audit_log TO {ROLE}")
    op.execute(f"GRANT USAGE ON SEQUENCE audit_log_id_seq TO {ROLE}")


def downgrade() -> None:
    op.execute(f"REVOKE USAGE ON SEQUENCE audit_log_id_seq FROM {ROLE}")
    op.execute(f"REVOKE SELECT ON SEQUENCE events_id_seq FROM {ROLE}")
    op.execute(f"REVOKE ALL ON audit_log FROM {ROLE}")
    for name in CLOSED_TABLES:
        op.execute(f"ALTER TABLE {name} DISABLE ROW LEVEL SECURITY")
    for name in POLICIES:
        op.execute(f"DROP POLICY partner_scope ON {name}")
        op.execute(f"ALTER TABLE {name} DISABLE ROW LEVEL SECURITY")
        op.execute(f"REVOKE SELECT ON {name} FROM {ROLE}")
    for name in REFERENCE_TABLES:
        op.execute(f"REVOKE SELECT ON {name} FROM {ROLE}")
    for signature in FUNCTION_NAMES:
        op.execute(f"DROP FUNCTION {signature}")
