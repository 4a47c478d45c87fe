"""The fictional retailer of the demo: Larkspur, a multi-brand group, and its touchpoints.

Four business lines (Wren & Co fashion, Hearthstone home, Voltline electronics, Bloom beauty)
share one app, one contact centre, one set of social and messaging accounts, department stores in
five countries, events and outbound campaigns. Every touchpoint has a short ``key`` the journey
simulator refers to; its stored identity is its ``name`` (an existing touchpoint of the same name
is reused rather than duplicated).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from hub.core.enums import ChannelCode as C
from hub.core.enums import TouchpointKind as K

FASHION = "Fashion"
HOME = "Home"
ELECTRONICS = "Electronics"
BEAUTY = "Beauty"
BUSINESS_LINES = (FASHION, HOME, ELECTRONICS, BEAUTY)

# Touchpoint ids of a fresh database are name-based UUIDs under this namespace: stable across
# seeds, so every demo database names the same touchpoint with the same id.
TOUCHPOINT_NAMESPACE = uuid.UUID("5b3f4a52-8d0e-4c59-9a51-6c1b8e2f7d10")


@dataclass(frozen=True, slots=True)
class TouchpointSpec:
    key: str
    name: str
    channel: C
    kind: K
    address: str | None = None
    business_line: str | None = None
    # Campaigns and events run for a while; outside that window nobody meets them.
    window: tuple[date, date] | None = None

    @property
    def default_id(self) -> uuid.UUID:
        return uuid.uuid5(TOUCHPOINT_NAMESPACE, self.name)


def _site(line: str, brand: str, host: str) -> TouchpointSpec:
    return TouchpointSpec(
        f"web.{line.lower()}", f"{brand} website", C.WEB, K.WEBSITE, f"https://{host}", line
    )


def _store(city: str, name: str, street: str) -> TouchpointSpec:
    return TouchpointSpec(f"store.{city}", name, C.PHYSICAL, K.STORE, street)


def _campaign(
    key: str, name: str, address: str, line: str | None, start: date, end: date
) -> TouchpointSpec:
    return TouchpointSpec(key, name, C.OUTBOUND, K.CAMPAIGN, address, line, (start, end))


TOUCHPOINTS: tuple[TouchpointSpec, ...] = (
    # Web: one website per business line, and the group's shared web services.
    _site(FASHION, "Wren & Co", "wrenandco.example"),
    _site(HOME, "Hearthstone Home", "hearthstonehome.example"),
    _site(ELECTRONICS, "Voltline", "voltline.example"),
    _site(BEAUTY, "Bloom Beauty", "bloombeauty.example"),
    TouchpointSpec(
        "chat", "Larkspur web chat", C.WEB, K.LIVE_CHAT, "https://larkspur.example/chat"
    ),
    TouchpointSpec(
        "bot", "Lark virtual assistant", C.WEB, K.CHATBOT, "https://larkspur.example/lark"
    ),
    TouchpointSpec(
        "help", "Larkspur help centre", C.WEB, K.SELF_SERVICE, "https://help.larkspur.example"
    ),
    TouchpointSpec(
        "community", "Larkspur community", C.WEB, K.COMMUNITY, "https://community.larkspur.example"
    ),
    # Mobile.
    TouchpointSpec(
        "mweb", "Larkspur mobile web", C.MOBILE, K.MOBILE_WEB, "https://m.larkspur.example"
    ),
    TouchpointSpec(
        "app.ios", "Larkspur iOS app", C.MOBILE, K.MOBILE_APP, "com.larkspur.shop (App Store)"
    ),
    TouchpointSpec(
        "app.android",
        "Larkspur Android app",
        C.MOBILE,
        K.MOBILE_APP,
        "com.larkspur.shop (Google Play)",
    ),
    # Assisted.
    TouchpointSpec("phone", "Larkspur contact centre", C.ASSISTED, K.VOICE, "+442079460100"),
    TouchpointSpec(
        "mailbox", "Customer care mailbox", C.ASSISTED, K.EMAIL, "care@larkspur.example"
    ),
    TouchpointSpec(
        "techline", "Voltline tech support line", C.ASSISTED, K.VOICE, "+442079460200", ELECTRONICS
    ),
    TouchpointSpec(
        "video",
        "Wren & Co video styling",
        C.ASSISTED,
        K.VIDEO,
        "https://wrenandco.example/styling",
        FASHION,
    ),
    # Social pages and messaging.
    TouchpointSpec(
        "social.facebook",
        "Larkspur on Facebook",
        C.SOCIAL,
        K.SOCIAL_PAGE,
        "https://facebook.com/larkspur",
    ),
    TouchpointSpec(
        "social.instagram",
        "Wren & Co on Instagram",
        C.SOCIAL,
        K.SOCIAL_PAGE,
        "instagram:wrenandco",
        FASHION,
    ),
    TouchpointSpec(
        "social.tiktok",
        "Bloom Beauty on TikTok",
        C.SOCIAL,
        K.SOCIAL_PAGE,
        "tiktok:bloombeauty",
        BEAUTY,
    ),
    TouchpointSpec("social.x", "Voltline on X", C.SOCIAL, K.SOCIAL_PAGE, "x:voltline", ELECTRONICS),
    TouchpointSpec(
        "social.youtube",
        "Hearthstone Home on YouTube",
        C.SOCIAL,
        K.SOCIAL_PAGE,
        "youtube:hearthstonehome",
        HOME,
    ),
    TouchpointSpec("whatsapp", "Larkspur on WhatsApp", C.SOCIAL, K.RICH_MESSAGING, "+442079460300"),
    TouchpointSpec(
        "messenger", "Larkspur on Messenger", C.SOCIAL, K.RICH_MESSAGING, "m.me/larkspur"
    ),
    # Physical: department stores carrying every line, and events.
    _store("london", "Larkspur London Oxford Street", "312 Oxford Street, London W1C 1HS"),
    _store("manchester", "Larkspur Manchester", "48 Market Street, Manchester M1 1PW"),
    _store("glasgow", "Larkspur Glasgow", "170 Buchanan Street, Glasgow G1 2LW"),
    _store("dublin", "Larkspur Dublin Grafton Street", "61 Grafton Street, Dublin 2, D02 VK12"),
    _store("berlin", "Larkspur Berlin", "Kurfürstendamm 231, 10719 Berlin"),
    _store("paris", "Larkspur Paris Rivoli", "88 rue de Rivoli, 75004 Paris"),
    _store("madrid", "Larkspur Madrid", "Gran Vía 32, 28013 Madrid"),
    TouchpointSpec(
        "event.spring-show",
        "Wren & Co spring show 2025",
        C.PHYSICAL,
        K.EVENT,
        "Larkspur London Oxford Street",
        FASHION,
        (date(2025, 3, 20), date(2025, 3, 23)),
    ),
    TouchpointSpec(
        "event.home-fair",
        "Hearthstone home fair 2025",
        C.PHYSICAL,
        K.EVENT,
        "Olympia, London",
        HOME,
        (date(2025, 9, 18), date(2025, 9, 21)),
    ),
    TouchpointSpec(
        "event.launch-night",
        "Voltline launch night 2026",
        C.PHYSICAL,
        K.EVENT,
        "Larkspur Berlin",
        ELECTRONICS,
        (date(2026, 2, 12), date(2026, 2, 12)),
    ),
    # Outbound: campaigns, notifications, post.
    _campaign(
        "campaign.newsletter",
        "Larkspur weekly newsletter",
        "news@larkspur.example",
        None,
        date(2025, 1, 1),
        date(2026, 6, 30),
    ),
    _campaign(
        "campaign.spring-sale",
        "Spring sale 2025",
        "news@larkspur.example",
        None,
        date(2025, 3, 10),
        date(2025, 4, 6),
    ),
    _campaign(
        "campaign.black-friday",
        "Voltline Black Friday 2025",
        "deals@voltline.example",
        ELECTRONICS,
        date(2025, 11, 17),
        date(2025, 12, 1),
    ),
    _campaign(
        "campaign.summer-sale",
        "Summer sale 2026",
        "news@larkspur.example",
        None,
        date(2026, 6, 1),
        date(2026, 6, 30),
    ),
    _campaign(
        "campaign.survey",
        "After-purchase survey",
        "feedback@larkspur.example",
        None,
        date(2025, 1, 1),
        date(2026, 6, 30),
    ),
    TouchpointSpec("sms.orders", "Order updates by SMS", C.OUTBOUND, K.SMS, "LARKSPUR"),
    TouchpointSpec(
        "email.orders", "Order updates by e-mail", C.OUTBOUND, K.EMAIL, "orders@larkspur.example"
    ),
    TouchpointSpec("sms.reminders", "Offer reminders by SMS", C.OUTBOUND, K.SMS, "+447860010010"),
    TouchpointSpec(
        "post",
        "Larkspur loyalty mailings",
        C.OUTBOUND,
        K.POSTAL_MAIL,
        "Larkspur, PO Box 4120, London",
    ),
)

SEASONAL_CAMPAIGNS = ("campaign.spring-sale", "campaign.black-friday", "campaign.summer-sale")
EVENTS = ("event.spring-show", "event.home-fair", "event.launch-night")
SOCIAL_PAGES = {
    "facebook": "social.facebook",
    "instagram": "social.instagram",
    "tiktok": "social.tiktok",
    "x": "social.x",
    "youtube": "social.youtube",
}
STORE_CITIES = ("london", "manchester", "glasgow", "dublin", "berlin", "paris", "madrid")


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    price: float
    line: str


PRODUCTS: dict[str, tuple[Product, ...]] = {
    FASHION: (
        Product("WR-1001", "linen shirt", 49.0, FASHION),
        Product("WR-1002", "wool coat", 189.0, FASHION),
        Product("WR-1003", "straight-leg jeans", 69.0, FASHION),
        Product("WR-1004", "leather ankle boots", 129.0, FASHION),
        Product("WR-1005", "silk scarf", 39.0, FASHION),
        Product("WR-1006", "summer dress", 79.0, FASHION),
    ),
    HOME: (
        Product("HS-2001", "oak dining table", 649.0, HOME),
        Product("HS-2002", "linen duvet set", 119.0, HOME),
        Product("HS-2003", "cast-iron casserole", 89.0, HOME),
        Product("HS-2004", "velvet armchair", 429.0, HOME),
        Product("HS-2005", "floor lamp", 99.0, HOME),
        Product("HS-2006", "wool rug", 249.0, HOME),
    ),
    ELECTRONICS: (
        Product("VL-3001", "noise-cancelling headphones", 279.0, ELECTRONICS),
        Product("VL-3002", "55-inch OLED TV", 1299.0, ELECTRONICS),
        Product("VL-3003", "robot vacuum", 399.0, ELECTRONICS),
        Product("VL-3004", "smartwatch", 229.0, ELECTRONICS),
        Product("VL-3005", "espresso machine", 349.0, ELECTRONICS),
        Product("VL-3006", "wireless speaker", 149.0, ELECTRONICS),
    ),
    BEAUTY: (
        Product("BL-4001", "vitamin C serum", 34.0, BEAUTY),
        Product("BL-4002", "eau de parfum", 88.0, BEAUTY),
        Product("BL-4003", "night cream", 42.0, BEAUTY),
        Product("BL-4004", "hair dryer", 159.0, BEAUTY),
        Product("BL-4005", "lipstick trio", 29.0, BEAUTY),
        Product("BL-4006", "spa gift box", 65.0, BEAUTY),
    ),
}

SEARCHES: dict[str, tuple[str, ...]] = {
    FASHION: ("linen shirt", "winter coat women", "ankle boots size 39", "wedding guest dress"),
    HOME: ("dining table oak", "duvet king size", "reading lamp", "rug 200x300"),
    ELECTRONICS: (
        "oled tv 55",
        "headphones noise cancelling",
        "robot vacuum pet hair",
        "smartwatch",
    ),
    BEAUTY: ("vitamin c serum", "perfume gift", "night cream sensitive skin", "hair dryer"),
}

AGENTS = (
    "Priya Shah",
    "Tom Gallagher",
    "Lena Vogel",
    "Camille Martin",
    "Javier Ortega",
    "Aoife Byrne",
    "Daniel Okafor",
    "Sophie Weber",
    "Marco Rossi",
    "Hannah Clarke",
    "Lucía Navarro",
    "Omar Haddad",
)
BOT = "Lark (virtual assistant)"
