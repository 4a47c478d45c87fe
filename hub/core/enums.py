"""The hub's fixed vocabularies, with what each value means.

Values are stored in PostgreSQL as their names (text columns), so adding a value never needs a
data migration. The GraphQL schema exposes the same enums, descriptions included.
"""

from __future__ import annotations

from enum import StrEnum


class ChannelCode(StrEnum):
    WEB = "WEB"
    MOBILE = "MOBILE"
    ASSISTED = "ASSISTED"
    SOCIAL = "SOCIAL"
    PHYSICAL = "PHYSICAL"
    OUTBOUND = "OUTBOUND"


CHANNEL_DESCRIPTIONS: dict[ChannelCode, tuple[str, str]] = {
    ChannelCode.WEB: (
        "Web",
        "Everything in a web browser: websites, web chat, self-service portals.",
    ),
    ChannelCode.MOBILE: ("Mobile", "Mobile websites and apps, including in-app messaging."),
    ChannelCode.ASSISTED: (
        "Assisted",
        "A person helps: help desk, contact centre, live agents, video calls.",
    ),
    ChannelCode.SOCIAL: ("Social", "Social media platforms and messaging on them."),
    ChannelCode.PHYSICAL: ("Physical", "In person: stores, branches, events."),
    ChannelCode.OUTBOUND: (
        "Outbound",
        "The business reaches out: email campaigns, SMS reminders, calls.",
    ),
}


class StageCode(StrEnum):
    AWARENESS = "AWARENESS"
    CONSIDERATION = "CONSIDERATION"
    PURCHASE = "PURCHASE"
    POST_PURCHASE = "POST_PURCHASE"
    RETENTION = "RETENTION"


STAGE_DESCRIPTIONS: dict[StageCode, tuple[str, str]] = {
    StageCode.AWARENESS: ("Awareness", "The customer learns of the brand."),
    StageCode.CONSIDERATION: (
        "Consideration",
        "The customer compares offers, reads details, asks questions.",
    ),
    StageCode.PURCHASE: ("Purchase", "The customer buys."),
    StageCode.POST_PURCHASE: ("Post-purchase", "Support, delivery and returns after a purchase."),
    StageCode.RETENTION: ("Retention", "Repeat purchases, loyalty and renewals."),
}

STAGE_ORDER: dict[StageCode, int] = {stage: index + 1 for index, stage in enumerate(StageCode)}


class IdentityKind(StrEnum):
    EMAIL = "EMAIL"
    PHONE = "PHONE"
    DEVICE_ID = "DEVICE_ID"
    COOKIE = "COOKIE"
    CRM_ID = "CRM_ID"
    LOYALTY_ID = "LOYALTY_ID"
    SOCIAL_HANDLE = "SOCIAL_HANDLE"


IDENTITY_KIND_DESCRIPTIONS: dict[IdentityKind, str] = {
    IdentityKind.EMAIL: "An e-mail address, stored trimmed and lower-cased.",
    IdentityKind.PHONE: "A phone number, stored in E.164 form (+4915112345678).",
    IdentityKind.DEVICE_ID: "A mobile device or app-install identifier.",
    IdentityKind.COOKIE: "A browser cookie identifier; too weak to merge known customers alone.",
    IdentityKind.CRM_ID: "The customer's id in a CRM system.",
    IdentityKind.LOYALTY_ID: "A loyalty card or programme number.",
    IdentityKind.SOCIAL_HANDLE: "A social platform handle, as platform:handle (instagram:ana).",
}


class Direction(StrEnum):
    INBOUND = "INBOUND"
    OUTBOUND = "OUTBOUND"


DIRECTION_DESCRIPTIONS: dict[Direction, str] = {
    Direction.INBOUND: "From the customer to the business.",
    Direction.OUTBOUND: "From the business to the customer.",
}


class TouchpointKind(StrEnum):
    WEBSITE = "WEBSITE"
    MOBILE_WEB = "MOBILE_WEB"
    MOBILE_APP = "MOBILE_APP"
    LIVE_CHAT = "LIVE_CHAT"
    CHATBOT = "CHATBOT"
    EMAIL = "EMAIL"
    SMS = "SMS"
    RICH_MESSAGING = "RICH_MESSAGING"
    VOICE = "VOICE"
    VIDEO = "VIDEO"
    SOCIAL_PAGE = "SOCIAL_PAGE"
    COMMUNITY = "COMMUNITY"
    SELF_SERVICE = "SELF_SERVICE"
    STORE = "STORE"
    EVENT = "EVENT"
    POSTAL_MAIL = "POSTAL_MAIL"
    CAMPAIGN = "CAMPAIGN"


TOUCHPOINT_KIND_DESCRIPTIONS: dict[TouchpointKind, str] = {
    TouchpointKind.WEBSITE: "A website; address is its URL.",
    TouchpointKind.MOBILE_WEB: "A mobile website; address is its URL.",
    TouchpointKind.MOBILE_APP: "A mobile app; address is its app or bundle id.",
    TouchpointKind.LIVE_CHAT: "Live chat or web chat with agents.",
    TouchpointKind.CHATBOT: "A chatbot or virtual agent.",
    TouchpointKind.EMAIL: "A mailbox; address is the e-mail address.",
    TouchpointKind.SMS: "SMS messaging; address is the sender number or short code.",
    TouchpointKind.RICH_MESSAGING: (
        "WhatsApp, Messenger, Apple Messages; address is the number or id."
    ),
    TouchpointKind.VOICE: "Voice calls; address is the phone number.",
    TouchpointKind.VIDEO: "Video calls or video consultations.",
    TouchpointKind.SOCIAL_PAGE: "A social page or profile; address is its handle or URL.",
    TouchpointKind.COMMUNITY: "An online forum or community.",
    TouchpointKind.SELF_SERVICE: "A self-service portal.",
    TouchpointKind.STORE: "A store or branch; address is the street address.",
    TouchpointKind.EVENT: "An event such as a fair or a launch.",
    TouchpointKind.POSTAL_MAIL: "Letters and catalogues by post.",
    TouchpointKind.CAMPAIGN: "An outbound campaign (newsletter, SMS reminder, call list).",
}


class InteractionType(StrEnum):
    AD_CLICK = "AD_CLICK"
    SOCIAL_ENGAGEMENT = "SOCIAL_ENGAGEMENT"
    SOCIAL_MENTION = "SOCIAL_MENTION"
    PAGE_VIEW = "PAGE_VIEW"
    PRODUCT_VIEW = "PRODUCT_VIEW"
    SEARCH = "SEARCH"
    QUESTION = "QUESTION"
    QUOTE_REQUEST = "QUOTE_REQUEST"
    CHAT_MESSAGE = "CHAT_MESSAGE"
    EMAIL = "EMAIL"
    SMS = "SMS"
    CALL = "CALL"
    STORE_VISIT = "STORE_VISIT"
    EVENT_ATTENDANCE = "EVENT_ATTENDANCE"
    ORDER = "ORDER"
    DELIVERY = "DELIVERY"
    SUPPORT_TICKET = "SUPPORT_TICKET"
    RETURN = "RETURN"
    SURVEY_RESPONSE = "SURVEY_RESPONSE"
    CAMPAIGN_SENT = "CAMPAIGN_SENT"
    CAMPAIGN_OPENED = "CAMPAIGN_OPENED"
    CAMPAIGN_CLICKED = "CAMPAIGN_CLICKED"
    REPEAT_ORDER = "REPEAT_ORDER"
    RENEWAL = "RENEWAL"
    LOYALTY_ACTIVITY = "LOYALTY_ACTIVITY"
    SCREEN_VIEW = "SCREEN_VIEW"
    TRACKED_EVENT = "TRACKED_EVENT"


INTERACTION_TYPE_DESCRIPTIONS: dict[InteractionType, str] = {
    InteractionType.AD_CLICK: "The customer clicked an advertisement.",
    InteractionType.SOCIAL_ENGAGEMENT: "A like, follow, share or comment on a social page.",
    InteractionType.SOCIAL_MENTION: "The customer mentioned the brand on a social platform.",
    InteractionType.PAGE_VIEW: "A page view on a website or app.",
    InteractionType.PRODUCT_VIEW: "The customer looked at a product's details.",
    InteractionType.SEARCH: "A search on a website or app.",
    InteractionType.QUESTION: "The customer asked a question (pre-sales).",
    InteractionType.QUOTE_REQUEST: "The customer asked for a quote or an offer.",
    InteractionType.CHAT_MESSAGE: "A chat message (live chat, chatbot, messaging app).",
    InteractionType.EMAIL: "An e-mail, in or out.",
    InteractionType.SMS: "A text message, in or out.",
    InteractionType.CALL: "A voice or video call.",
    InteractionType.STORE_VISIT: "A visit to a store or branch.",
    InteractionType.EVENT_ATTENDANCE: "The customer attended an event.",
    InteractionType.ORDER: "A purchase.",
    InteractionType.DELIVERY: "A delivery notice or confirmation.",
    InteractionType.SUPPORT_TICKET: "A support request after a purchase.",
    InteractionType.RETURN: "A return or exchange.",
    InteractionType.SURVEY_RESPONSE: "An answer to a survey.",
    InteractionType.CAMPAIGN_SENT: "An outbound campaign message was sent.",
    InteractionType.CAMPAIGN_OPENED: "The customer opened a campaign message.",
    InteractionType.CAMPAIGN_CLICKED: "The customer clicked through a campaign message.",
    InteractionType.REPEAT_ORDER: "A purchase by a customer who bought before.",
    InteractionType.RENEWAL: "A subscription or contract renewal.",
    InteractionType.LOYALTY_ACTIVITY: "Points earned or redeemed in a loyalty programme.",
    InteractionType.SCREEN_VIEW: "A screen view in a mobile or desktop app.",
    InteractionType.TRACKED_EVENT: (
        "An event a tracking source sent whose name is not mapped to a type yet (its name is "
        "in `attributes.event`; `unmappedEvents` lists them for an ADMIN to map)."
    ),
}


# The built-in consent purposes (``hub.privacy.consent.ConsentPurpose``) and what each means.
CONSENT_PURPOSE_DESCRIPTIONS: dict[str, str] = {
    "MARKETING": "Marketing messages and campaigns.",
    "ANALYTICS": "Analytics over the customer's behaviour.",
    "PERSONALIZATION": "Personalised offers and content.",
    "PARTNER_SHARING": "Sharing the customer's events with partners.",
}


class ConversationStatus(StrEnum):
    OPEN = "OPEN"
    RESOLVED = "RESOLVED"


CONVERSATION_STATUS_DESCRIPTIONS: dict[ConversationStatus, str] = {
    ConversationStatus.OPEN: "Still waiting for an answer or an outcome.",
    ConversationStatus.RESOLVED: "Closed with an outcome.",
}


class StageTransition(StrEnum):
    INITIAL = "INITIAL"
    FORWARD = "FORWARD"
    BACKWARD = "BACKWARD"
    LOOPING = "LOOPING"


STAGE_TRANSITION_DESCRIPTIONS: dict[StageTransition, str] = {
    StageTransition.INITIAL: "The customer's first stage.",
    StageTransition.FORWARD: "To a later stage.",
    StageTransition.BACKWARD: "To an earlier stage.",
    StageTransition.LOOPING: "Same stage, on another channel.",
}
