"""The demo's named customer: Ana, whom the README, the explorer and docs/try-it talk about.

Her journey is a fixed script played through the same simulator primitives as everyone else's
(``JourneySimulator._emit`` and ``_say``: the default stage rules, ``classify_transition``,
version-7 ids), from a random stream of her own, so she is identical in every demo database
whatever the seed or the number of customers:

- 8 June 2026, she likes a Wren & Co post on Instagram (Awareness, SOCIAL);
- the next day she looks at the linen jacket on the Wren & Co website (Consideration, WEB) and
  again that evening in the iOS app (Consideration on MOBILE: LOOPING);
- on the 11th she asks the web chat whether it comes in blue (conversation ``CASE-ANA-JACKET``);
- on the 13th she picks the same conversation up on WhatsApp, where the agent holds a jacket
  for her; the conversation stays OPEN;
- on the 14th she tries it on in the London store (Consideration on PHYSICAL).

She has not bought it yet: recording her order moves her to Purchase (README, "Try it").
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import date

from hub.core.enums import IdentityKind
from hub.seeds.dice import Dice
from hub.seeds.generator import add_customer
from hub.seeds.journeys import (
    CHAT_MESSAGE,
    IN,
    OUT,
    PRODUCT_VIEW,
    QUESTION,
    SOCIAL_ENGAGEMENT,
    STORE_VISIT,
    JourneySimulator,
    PlacedTouchpoint,
    Rows,
    _Conversation,
)
from hub.seeds.people import COUNTRIES, Person
from hub.seeds.timeline import DAY, HOUR, MINUTE, UNIX_MS, offset

ANA_EMAIL = "ana@example.com"
ANA_PHONE = "+442079460958"  # the README's "+44 20 7946 0958", normalised
ANA_NAME = "Ana Silva"
ANA_CONVERSATION = "CASE-ANA-JACKET"
ANA_IDENTITIES: tuple[tuple[str, str], ...] = (
    (IdentityKind.EMAIL.value, ANA_EMAIL),
    (IdentityKind.PHONE.value, ANA_PHONE),
    (IdentityKind.LOYALTY_ID.value, "LSP0000000001"),
    (IdentityKind.SOCIAL_HANDLE.value, "instagram:ana.silva"),
)
ANA_TRAITS = {
    "city": "London",
    "country": "GB",
    "preferred_language": "en",
    "favourite_line": "Fashion",
    "preferred_channel": "MOBILE",
    "age_band": "25-34",
    "marketing_opt_in": True,
    "tier": "gold",
}
_START = offset(date(2026, 6, 8)) + 19 * HOUR + 12 * MINUTE
_AGENT = "Priya Shah"


def _ana() -> Person:
    uk = next(country for country in COUNTRIES if country.code == "GB")
    return Person(
        country=uk,
        city="London",
        home_store="store.london",
        first_name="Ana",
        last_name="Silva",
        app="ios",
        social=("instagram",),
        favourite_line="Fashion",
        store_goer=True,
        newsletter=True,
        loyalty_member=True,
        sms_opt_in=True,
        identities=list(ANA_IDENTITIES),
        traits=dict(ANA_TRAITS),
    )


class _AnasJourney(JourneySimulator):
    """Ana's script in place of the random one."""

    def _journey(self) -> None:
        self._emit(
            "social.instagram",
            SOCIAL_ENGAGEMENT,
            IN,
            "Liked a post about the Wren & Co linen jacket",
            {"action": "like", "post": "linen-jacket-summer"},
        )
        self._at(DAY + 17 * HOUR + 28 * MINUTE)  # 9 June, 12:40
        self._emit(
            "web.fashion",
            PRODUCT_VIEW,
            IN,
            "Viewed Linen jacket (navy)",
            {"sku": "WC-LJ-NAVY", "price": 129.0},
        )
        self._at(DAY + 25 * HOUR + 53 * MINUTE)  # 9 June, 21:05
        self._emit(
            "app.ios",
            PRODUCT_VIEW,
            IN,
            "Viewed Linen jacket (navy) in the app",
            {"sku": "WC-LJ-NAVY", "price": 129.0},
        )
        chat = self._open_story_conversation(3 * DAY - 9 * HOUR + 3 * MINUTE)  # 11 June, 10:15
        self._say(chat, "chat", QUESTION, IN, "Does the linen jacket come in blue?", _AGENT, 0.3)
        self._say(
            chat,
            "chat",
            CHAT_MESSAGE,
            OUT,
            "Blue arrives in the London store on Saturday; I can hold one in your size.",
            _AGENT,
            0.5,
        )
        self._at(5 * DAY - 10 * HOUR + 18 * MINUTE)  # 13 June, 09:30
        self._say(
            chat,
            "whatsapp",
            CHAT_MESSAGE,
            IN,
            "Is the blue one in the London store yet?",
            _AGENT,
            0.4,
        )
        self._say(
            chat,
            "whatsapp",
            CHAT_MESSAGE,
            OUT,
            "Yes: a blue linen jacket in size 10 is on hold for you at Oxford Street.",
            _AGENT,
            0.6,
        )
        self._at(6 * DAY - 3 * HOUR - 12 * MINUTE)  # 14 June, 16:00
        self._emit(
            "store.london",
            STORE_VISIT,
            IN,
            "Tried on the blue linen jacket",
            {"minutes": 25},
        )

    def _at(self, since_start: int) -> None:
        """Move the clock to ``since_start`` seconds after her first interaction."""
        self.t = max(self.t, _START + since_start)

    def _open_story_conversation(self, since_start: int) -> _Conversation:
        self._at(since_start)
        conversation = self._open_conversation()
        conversation.key = ANA_CONVERSATION
        return conversation


def story_rows(touchpoints: Mapping[str, PlacedTouchpoint], taken: dict[str, set[str]]) -> Rows:
    """Ana's rows (customer, identities, conversation, interactions, stage history).

    ``taken`` (identifier values by kind) gets her identifiers, so that the random customers
    generated afterwards never reuse them.
    """
    dice = Dice(random.Random("hub-demo-story:ana"))
    person = _ana()
    rows = Rows()
    customer_id = dice.uuid7(UNIX_MS + _START * 1000)
    outcome = _AnasJourney(dice, touchpoints, {ANA_CONVERSATION}).simulate(
        customer_id, person, _START, rows
    )
    add_customer(rows, customer_id, person, outcome)
    for kind, value in person.identities:
        taken.setdefault(kind, set()).add(value)
    return rows
