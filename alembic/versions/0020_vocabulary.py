"""the vocabulary kept as data: interaction types, identity kinds, touchpoint kinds and consent
purposes as tables

Until now these four were Python enums (``hub.core.enums``) exposed as
GraphQL enums; from here they are rows, seeded with exactly the values of those enums, and an
ADMIN defines more at run time (``defineInteractionType``, ``defineIdentityKind``,
``defineTouchpointKind``, ``defineConsentPurpose``). An
interaction type may carry a JSON Schema for its attributes and the list of its personal
attributes; an identity kind names its normaliser. ``vocabulary_version`` holds one row: a
version bumped in the transaction of every change, and an epoch (random per database) so a
process's cache never mistakes one database's version for another's (docs/sources.md).

Revision ID: 0020
Revises: 0017

"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

NOW = sa.text("now()")
TABLES = ("interaction_types", "identity_kinds", "touchpoint_kinds", "consent_purposes")

# Copies, not imports: a migration keeps the data it was written with.
INTERACTION_TYPES = [
    ("AD_CLICK", "Ad click", "The customer clicked an advertisement."),
    (
        "SOCIAL_ENGAGEMENT",
        "Social engagement",
        "A like, follow, share or comment on a social page.",
    ),
    ("SOCIAL_MENTION", "Social mention", "The customer mentioned the brand on social media."),
    ("PAGE_VIEW", "Page view", "A page view on a website or app."),
    ("PRODUCT_VIEW", "Product view", "The customer looked at a product's details."),
    ("SEARCH", "Search", "A search on a website or app."),
    ("QUESTION", "Question", "The customer asked a question (pre-sales)."),
    ("QUOTE_REQUEST", "Quote request", "The customer asked for a quote or an offer."),
    ("CHAT_MESSAGE", "Chat message", "A chat message (live chat, chatbot, messaging app)."),
    ("EMAIL", "E-mail", "An e-mail, in or out."),
    ("SMS", "SMS", "A text message, in or out."),
    ("CALL", "Call", "A voice or video call."),
    ("STORE_VISIT", "Store visit", "A visit to a store or branch."),
    ("EVENT_ATTENDANCE", "Event attendance", "The customer attended an event."),
    ("ORDER", "Order", "A purchase."),
    ("DELIVERY", "Delivery", "A delivery notice or confirmation."),
    ("SUPPORT_TICKET", "Support ticket", "A support request after a purchase."),
    ("RETURN", "Return", "A return or exchange."),
    ("SURVEY_RESPONSE", "Survey response", "An answer to a survey."),
    ("CAMPAIGN_SENT", "Campaign sent", "An outbound campaign message was sent."),
    ("CAMPAIGN_OPENED", "Campaign opened", "The customer opened a campaign message."),
    ("CAMPAIGN_CLICKED", "Campaign clicked", "The customer clicked through a campaign message."),
    ("REPEAT_ORDER", "Repeat order", "A purchase by a customer who bought before."),
    ("RENEWAL", "Renewal", "A subscription or contract renewal."),
    ("LOYALTY_ACTIVITY", "Loyalty activity", "Points earned or redeemed in a loyalty programme."),
    ("SCREEN_VIEW", "Screen view", "A screen view in a mobile or desktop app."),
    (
        "TRACKED_EVENT",
        "Tracked event",
        "An event a tracking source sent whose name is not mapped to a type yet (its name is "
        "in `attributes.event`; `unmappedEvents` lists them for an ADMIN to map).",
    ),
]

IDENTITY_KINDS = [
    ("EMAIL", "E-mail", "An e-mail address, stored trimmed and lower-cased.", "EMAIL"),
    ("PHONE", "Phone", "A phone number, stored in E.164 form (+4915112345678).", "PHONE"),
    ("DEVICE_ID", "Device id", "A mobile device or app-install identifier.", "TRIMMED"),
    (
        "COOKIE",
        "Cookie",
        "A browser cookie identifier; too weak to merge known customers alone.",
        "TRIMMED",
    ),
    ("CRM_ID", "CRM id", "The customer's id in a CRM system.", "TRIMMED"),
    ("LOYALTY_ID", "Loyalty id", "A loyalty card or programme number.", "TRIMMED"),
    (
        "SOCIAL_HANDLE",
        "Social handle",
        "A social platform handle, as platform:handle (instagram:ana).",
        "SOCIAL_HANDLE",
    ),
]


TOUCHPOINT_KINDS = [
    ("WEBSITE", "Website", "A website; address is its URL."),
    ("MOBILE_WEB", "Mobile web", "A mobile website; address is its URL."),
    ("MOBILE_APP", "Mobile app", "A mobile app; address is its app or bundle id."),
    ("LIVE_CHAT", "Live chat", "Live chat or web chat with agents."),
    ("CHATBOT", "Chatbot", "A chatbot or virtual agent."),
    ("EMAIL", "Email", "A mailbox; address is the e-mail address."),
    ("SMS", "Sms", "SMS messaging; address is the sender number or short code."),
    (
        "RICH_MESSAGING",
        "Rich messaging",
        "WhatsApp, Messenger, Apple Messages; address is the number or id.",
    ),
    ("VOICE", "Voice", "Voice calls; address is the phone number."),
    ("VIDEO", "Video", "Video calls or video consultations."),
    ("SOCIAL_PAGE", "Social page", "A social page or profile; address is its handle or URL."),
    ("COMMUNITY", "Community", "An online forum or community."),
    ("SELF_SERVICE", "Self service", "A self-service portal."),
    ("STORE", "Store", "A store or branch; address is the street address."),
    ("EVENT", "Event", "An event such as a fair or a launch."),
    ("POSTAL_MAIL", "Postal mail", "Letters and catalogues by post."),
    ("CAMPAIGN", "Campaign", "An outbound campaign (newsletter, SMS reminder, call list)."),
]

CONSENT_PURPOSES = [
    ("MARKETING", "Marketing", "Marketing messages and campaigns."),
    ("ANALYTICS", "Analytics", "Analytics over the customer's behaviour."),
    ("PERSONALIZATION", "Personalization", "Personalised offers and content."),
    ("PARTNER_SHARING", "Partner sharing", "Sharing the customer's events with partners."),
]


def _simple(name: str, rows: list[tuple[str, str, str]]) -> None:
    """A vocabulary of codes with a name and a description (touchpoint kinds, purposes)."""
    table = op.create_table(
        name,
        sa.Column("code", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("built_in", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
    )
    op.bulk_insert(
        table,
        [
            {
                "code": code,
                "name": label,
                "description": text,
                "built_in": True,
                "updated_by": "migration 0020",
            }
            for code, label, text in rows
        ],
    )


def upgrade() -> None:
    types = op.create_table(
        "interaction_types",
        sa.Column("code", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("attributes_schema", JSONB(), nullable=True),
        sa.Column("personal_attributes", ARRAY(sa.Text()), nullable=False, server_default="{}"),
        sa.Column("built_in", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
    )
    op.bulk_insert(
        types,
        [
            {
                "code": code,
                "name": name,
                "description": text,
                "built_in": True,
                "personal_attributes": [],
                "updated_by": "migration 0020",
            }
            for code, name, text in INTERACTION_TYPES
        ],
    )
    kinds = op.create_table(
        "identity_kinds",
        sa.Column("code", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("normaliser", sa.Text(), nullable=False),
        sa.Column("built_in", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
    )
    op.bulk_insert(
        kinds,
        [
            {
                "code": code,
                "name": name,
                "description": text,
                "normaliser": normaliser,
                "built_in": True,
                "updated_by": "migration 0020",
            }
            for code, name, text, normaliser in IDENTITY_KINDS
        ],
    )
    _simple("touchpoint_kinds", TOUCHPOINT_KINDS)
    _simple("consent_purposes", CONSENT_PURPOSES)
    op.create_table(
        "vocabulary_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "epoch", UUID(as_uuid=True), nullable=False, server_default=sa.text("gen_random_uuid()")
        ),
        sa.Column("version", sa.BigInteger(), nullable=False, server_default="1"),
        sa.CheckConstraint("id = 1", name="ck_vocabulary_version_one_row"),
    )
    op.execute("INSERT INTO vocabulary_version (id) VALUES (1)")
    # Reference data, like the channels (0013): a PARTNER's row-secured connection reads it too.
    for name in (*TABLES, "vocabulary_version"):
        op.execute(f"GRANT SELECT ON {name} TO hub_partner")


def downgrade() -> None:
    op.drop_table("vocabulary_version")
    for name in reversed(TABLES):
        op.drop_table(name)
