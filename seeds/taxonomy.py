"""The channel and journey-stage taxonomy and the default stage rules.

Migration 0001 writes these into every new database; later changes to this file need a migration
that upserts them.
"""

from __future__ import annotations

from hub.core.enums import (
    CHANNEL_DESCRIPTIONS,
    STAGE_DESCRIPTIONS,
    STAGE_ORDER,
    ChannelCode,
    InteractionType,
    StageCode,
)

CHANNEL_ROWS: list[dict[str, object]] = [
    {"code": code.value, "name": name, "description": description, "position": position}
    for position, (code, (name, description)) in enumerate(CHANNEL_DESCRIPTIONS.items(), start=1)
]

STAGE_ROWS: list[dict[str, object]] = [
    {"code": code.value, "name": name, "description": description, "position": STAGE_ORDER[code]}
    for code, (name, description) in STAGE_DESCRIPTIONS.items()
]

T = InteractionType
S = StageCode

# Which stage an interaction type signals. A rule with a channel overrides the channel-less rule
# of the same type on that channel. Types missing here (plain e-mails, SMS, chats, calls) do not
# move the customer: what they mean depends on the conversation, not on the medium.
DEFAULT_STAGE_RULES: list[tuple[InteractionType, ChannelCode | None, StageCode]] = [
    (T.AD_CLICK, None, S.AWARENESS),
    (T.SOCIAL_ENGAGEMENT, None, S.AWARENESS),
    (T.SOCIAL_MENTION, None, S.AWARENESS),
    (T.EVENT_ATTENDANCE, None, S.AWARENESS),
    (T.CAMPAIGN_OPENED, None, S.AWARENESS),
    (T.PAGE_VIEW, None, S.AWARENESS),
    (T.SCREEN_VIEW, None, S.AWARENESS),  # migration 0017
    (T.PRODUCT_VIEW, None, S.CONSIDERATION),
    (T.SEARCH, None, S.CONSIDERATION),
    (T.QUESTION, None, S.CONSIDERATION),
    (T.QUOTE_REQUEST, None, S.CONSIDERATION),
    (T.STORE_VISIT, None, S.CONSIDERATION),
    (T.CAMPAIGN_CLICKED, None, S.CONSIDERATION),
    (T.ORDER, None, S.PURCHASE),
    (T.DELIVERY, None, S.POST_PURCHASE),
    (T.SUPPORT_TICKET, None, S.POST_PURCHASE),
    (T.RETURN, None, S.POST_PURCHASE),
    (T.SURVEY_RESPONSE, None, S.POST_PURCHASE),
    (T.REPEAT_ORDER, None, S.RETENTION),
    (T.RENEWAL, None, S.RETENTION),
    (T.LOYALTY_ACTIVITY, None, S.RETENTION),
]

STAGE_RULE_ROWS: list[dict[str, object]] = [
    {
        "interaction_type": itype.value,
        "channel_code": channel.value if channel else None,
        "stage": stage.value,
    }
    for itype, channel, stage in DEFAULT_STAGE_RULES
]
