"""Simulating one customer's journey across channels and stages.

A journey is a script with random branches: the customer is found on social or the web
(Awareness), compares on the web, the app or in a store and asks questions (Consideration), buys
online or in store (Purchase), gets deliveries, support and surveys (Post-purchase), and comes
back through outbound campaigns, loyalty and renewals (Retention). Many drop out early; some go
back a stage (browsing the home page again, opening a newsletter after buying).

Every interaction passes through the default stage rules and ``classify_transition`` exactly as
live ingest would, and each change becomes a ``stage_history`` row, so the history always agrees
with the interactions. Time only moves forward (at least one second per interaction) and the
journey stops where the data set ends.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson

from hub.core.enums import Direction, InteractionType, StageCode
from hub.journeys.rules import classify_transition
from hub.seeds.catalog import (
    AGENTS,
    BOT,
    BUSINESS_LINES,
    ELECTRONICS,
    EVENTS,
    FASHION,
    HOME,
    PRODUCTS,
    SEARCHES,
    SEASONAL_CAMPAIGNS,
    SOCIAL_PAGES,
    TouchpointSpec,
)
from hub.seeds.dice import Dice, Weighted
from hub.seeds.people import Person
from hub.seeds.taxonomy import DEFAULT_STAGE_RULES
from hub.seeds.timeline import DAY, EPOCH, HOUR, MINUTE, SPAN_SECONDS, UNIX_MS, WEEK, at, offset

# Plain strings for the hot loop: enum attribute access costs more than building a whole row.
_T = InteractionType
AD_CLICK = _T.AD_CLICK.value
SOCIAL_ENGAGEMENT = _T.SOCIAL_ENGAGEMENT.value
SOCIAL_MENTION = _T.SOCIAL_MENTION.value
PAGE_VIEW = _T.PAGE_VIEW.value
PRODUCT_VIEW = _T.PRODUCT_VIEW.value
SEARCH = _T.SEARCH.value
QUESTION = _T.QUESTION.value
QUOTE_REQUEST = _T.QUOTE_REQUEST.value
CHAT_MESSAGE = _T.CHAT_MESSAGE.value
EMAIL = _T.EMAIL.value
CALL = _T.CALL.value
STORE_VISIT = _T.STORE_VISIT.value
EVENT_ATTENDANCE = _T.EVENT_ATTENDANCE.value
ORDER = _T.ORDER.value
DELIVERY = _T.DELIVERY.value
SUPPORT_TICKET = _T.SUPPORT_TICKET.value
RETURN = _T.RETURN.value
SURVEY_RESPONSE = _T.SURVEY_RESPONSE.value
CAMPAIGN_SENT = _T.CAMPAIGN_SENT.value
CAMPAIGN_OPENED = _T.CAMPAIGN_OPENED.value
CAMPAIGN_CLICKED = _T.CAMPAIGN_CLICKED.value
REPEAT_ORDER = _T.REPEAT_ORDER.value
RENEWAL = _T.RENEWAL.value
LOYALTY_ACTIVITY = _T.LOYALTY_ACTIVITY.value
IN = Direction.INBOUND.value
OUT = Direction.OUTBOUND.value

Row = tuple[Any, ...]

_RULES: dict[tuple[str, str | None], str] = {
    (itype.value, channel.value if channel else None): stage.value
    for itype, channel, stage in DEFAULT_STAGE_RULES
}


def stage_for(itype: str, channel: str) -> str | None:
    """The stage an interaction signals: a rule for its channel first, then the general rule."""
    return _RULES.get((itype, channel)) or _RULES.get((itype, None))


@functools.cache
def _classify(
    previous_stage: str | None, stage: str, previous_channel: str | None, channel: str
) -> str | None:
    # classify_transition is pure, and there are only a few hundred argument combinations.
    transition = classify_transition(
        StageCode(previous_stage) if previous_stage else None,
        StageCode(stage),
        previous_channel,
        channel,
    )
    return transition.value if transition else None


@dataclass(frozen=True, slots=True)
class PlacedTouchpoint:
    """A catalog touchpoint as it is stored: its database id and its channel."""

    id: str
    channel: str
    spec: TouchpointSpec


@dataclass(slots=True)
class Rows:
    """Rows for the COPY of one chunk, in the column order of ``seeds.bulk``."""

    customers: list[Row] = field(default_factory=list)
    identities: list[Row] = field(default_factory=list)
    conversations: list[Row] = field(default_factory=list)
    interactions: list[Row] = field(default_factory=list)
    stage_history: list[Row] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class JourneyOutcome:
    first_seen: int
    last_seen: int
    stage: str | None
    stage_entered: int | None
    interactions: int


@dataclass(slots=True)
class _Conversation:
    id: str
    key: str
    started: int
    last: int = 0
    resolved: bool = False


@dataclass(frozen=True, slots=True)
class _Order:
    online: bool
    order_id: str
    line: str


class _DataEnds(Exception):
    """The journey reached the end of the data set."""


_QUESTION_TOPICS = (
    "is in stock in my size",
    "can be delivered by Friday",
    "comes with a warranty",
    "has a cheaper alternative",
    "can be collected in store",
)
_SUPPORT_ISSUES = (
    ("My order {order} has not arrived", "delivery rescheduled"),
    ("The item from order {order} arrived damaged", "replacement sent"),
    ("I was charged twice for order {order}", "refund issued"),
    ("How do I set up what I bought ({order})?", "advice given"),
    ("I want to change the address for order {order}", "address updated"),
)
_QUESTION_START = Weighted(
    (("bot", 35), ("chat", 25), ("whatsapp", 15), ("messenger", 5), ("mailbox", 15), ("phone", 5))
)
_SUPPORT_START = Weighted((("mailbox", 40), ("chat", 25), ("whatsapp", 15), ("phone", 20)))
# Escalation moves a support case to other channels, as real cases do.
_ESCALATION = {
    "mailbox": ("chat", "phone"),
    "chat": ("phone",),
    "whatsapp": ("phone",),
    "phone": ("mailbox",),
    "techline": ("mailbox",),
}
_MESSAGE_TYPE = {
    "mailbox": EMAIL,
    "chat": CHAT_MESSAGE,
    "whatsapp": CHAT_MESSAGE,
    "messenger": CHAT_MESSAGE,
    "bot": CHAT_MESSAGE,
    "phone": CALL,
    "techline": CALL,
}
_NPS = Weighted(zip(range(11), (2, 1, 1, 2, 2, 4, 6, 10, 16, 14, 12), strict=True))
_PAGES = ("/", "/new-in", "/sale", "/stores", "/gift-ideas", "/about")
_SOCIAL_ACTIONS = ("liked a post", "followed the page", "shared a video", "commented on a post")
_CURRENCY_SIGN = {"GBP": "£", "EUR": "€"}
_LAGS = [timedelta(seconds=s) for s in range(121)]  # recording delays, built once
_WEBSITES = {line: f"web.{line.lower()}" for line in BUSINESS_LINES}


def _span(spec: TouchpointSpec) -> tuple[int, int, TouchpointSpec]:
    assert spec.window is not None, f"{spec.name} has no dates"
    return offset(spec.window[0]), offset(spec.window[1]) + DAY - 1, spec


class JourneySimulator:
    """Writes the interactions, conversations and stage changes of one customer at a time."""

    def __init__(
        self,
        dice: Dice,
        touchpoints: Mapping[str, PlacedTouchpoint],
        conversation_keys: set[str],
        activity: float = 1.0,
    ) -> None:
        self.dice = dice
        self.tp = touchpoints
        self.conversation_keys = conversation_keys
        # Retained customers lapse with this chance per round: activity 2 halves it, so they
        # stay twice as long on average (the benchmark's denser data set). At 1 the random
        # stream is exactly the default one.
        self._lapse = 0.12 / activity
        # ... and come back more often (rounds 4 days to 5 weeks apart at activity 1).
        self._round_wait = (int(4 * DAY / activity), int(5 * WEEK / activity))
        # (first second, last second, touchpoint) of each dated event and seasonal campaign.
        self._events = [_span(touchpoints[key].spec) for key in EVENTS]
        self._seasonal = [_span(touchpoints[key].spec) for key in SEASONAL_CAMPAIGNS]

    # -- one customer ------------------------------------------------------------------------

    def simulate(self, customer_id: str, person: Person, start: int, rows: Rows) -> JourneyOutcome:
        """Write the journey of a customer who first shows up ``start`` seconds after the epoch."""
        self.customer_id = customer_id
        self.person = person
        self.rows = rows
        self.currency = person.country.currency
        self.t = start
        self.first_seen = self.last_seen = start
        self.count = 0
        self.stage: str | None = None
        self.stage_channel: str | None = None
        self.stage_entered: int | None = None
        self.conversations: list[_Conversation] = []
        with contextlib.suppress(_DataEnds):
            self._journey()
        # The first awareness step never waits, so every journey has at least one interaction.
        assert self.count, "a journey without interactions"
        for conversation in self.conversations:
            last = at(conversation.last)
            rows.conversations.append(
                (
                    conversation.id,
                    customer_id,
                    conversation.key,
                    "RESOLVED" if conversation.resolved else "OPEN",
                    at(conversation.started),
                    last,
                    last if conversation.resolved else None,
                )
            )
        return JourneyOutcome(
            self.first_seen, self.last_seen, self.stage, self.stage_entered, self.count
        )

    def _journey(self) -> None:
        chance = self.dice.chance
        self._awareness()
        if self.person.first_name is None or chance(0.2):
            return
        self._consideration()
        if chance(0.38):
            return
        self._wait(2 * MINUTE, 4 * DAY)  # a last look, or a few nights' sleep on it
        self._after_purchase(self._purchase(repeat=False))
        self._retention()

    # -- stages ------------------------------------------------------------------------------

    def _awareness(self) -> None:
        dice = self.dice
        person = self.person
        for step in range(1 + dice.chance(0.5) + dice.chance(0.2)):
            if step:
                self._wait(20 * MINUTE, 3 * DAY)
            roll = dice.random()
            if person.social and roll < 0.45:
                self._social_touch()
            elif roll < 0.5 and self._attend_event():
                pass
            elif roll < 0.7:
                line = person.favourite_line
                keyword = dice.pick(SEARCHES[line])
                self._emit(
                    _WEBSITES[line],
                    AD_CLICK,
                    IN,
                    f"Clicked a search ad for “{keyword}”",
                    {"source": "search-ad", "keyword": keyword},
                )
            else:
                page = dice.pick(_PAGES)
                browser = self._browser(person.favourite_line)
                self._emit(browser, PAGE_VIEW, IN, f"Viewed {page}", {"path": page})

    def _consideration(self) -> None:
        dice = self.dice
        person = self.person
        for _ in range(dice.between(2, 6)):
            self._wait(5 * MINUTE, 2 * DAY)
            roll = dice.random()
            if roll < 0.4:
                self._product_view()
            elif roll < 0.56:
                line = self._line()
                query = dice.pick(SEARCHES[line])
                self._emit(
                    self._browser(line),
                    SEARCH,
                    IN,
                    f"Searched for “{query}”",
                    {"query": query, "results": dice.between(3, 60)},
                )
            elif roll < 0.68 and person.store_goer and person.home_store:
                minutes = dice.between(10, 75)
                self._emit(
                    person.home_store,
                    STORE_VISIT,
                    IN,
                    f"Visited the store for {minutes} minutes",
                    {"minutes": minutes},
                )
            elif roll < 0.8:
                self._question()
            elif roll < 0.86 and person.favourite_line in (HOME, ELECTRONICS):
                self._quote_request()
            elif roll < 0.86 and person.favourite_line == FASHION:
                self._styling_session()
            elif roll < 0.94:
                # Back to square one: the home page or the community again (Awareness).
                key = dice.pick((_WEBSITES[person.favourite_line], "community", "mweb"))
                self._emit(key, PAGE_VIEW, IN, "Browsed the home page again", {"path": "/"})
            else:
                self._product_view()

    def _purchase(self, *, repeat: bool) -> _Order:
        dice = self.dice
        person = self.person
        roll = dice.random()
        line = self._line()
        if person.store_goer and person.home_store and roll < 0.45:
            key, online = person.home_store, False
        elif person.app and roll < 0.75:
            key, online = f"app.{person.app}", True
        elif roll < 0.85:
            key, online = _WEBSITES[line], True
        else:
            key, online = "mweb", True
        count = dice.between(1, 3)
        products = dice.rng.sample(PRODUCTS[line], count)
        amount = round(sum(p.price for p in products), 2)
        order_id = f"LS{dice.between(0, 999_999_999):09d}"
        names = ", ".join(p.name for p in products)
        self._emit(
            key,
            REPEAT_ORDER if repeat else ORDER,
            IN,
            f"Ordered {names} ({_CURRENCY_SIGN[self.currency]}{amount:,.2f})",
            {
                "order_id": order_id,
                "amount": amount,
                "currency": self.currency,
                "items": count,
                "skus": [p.sku for p in products],
            },
            outcome="paid",
        )
        return _Order(online, order_id, line)

    def _after_purchase(self, order: _Order) -> None:
        dice = self.dice
        person = self.person
        if order.online:
            self._wait(HOUR, 3 * DAY)
            self._emit(
                "sms.orders" if person.sms_opt_in else "email.orders",
                DELIVERY,
                OUT,
                f"Order {order.order_id} delivered",
                {"order_id": order.order_id, "carrier": dice.pick(("DPD", "DHL", "UPS"))},
                outcome="delivered",
            )
        if dice.chance(0.18):
            self._support(order)
        if dice.chance(0.07):
            self._wait(DAY, 14 * DAY)
            in_store = person.home_store is not None and dice.chance(0.5)
            self._emit(
                person.home_store if in_store and person.home_store else "help",
                RETURN,
                IN,
                f"Returned items from order {order.order_id}",
                {"order_id": order.order_id},
                outcome="refunded",
            )
        if dice.chance(0.3):
            self._wait(2 * DAY, 10 * DAY)
            score = _NPS.draw(dice)
            self._emit(
                "campaign.survey",
                SURVEY_RESPONSE,
                IN,
                f"Rated the purchase {score}/10",
                {"nps": score, "order_id": order.order_id},
                sentiment=round((score - 5) / 5, 2),
            )

    def _retention(self) -> None:
        dice = self.dice
        person = self.person
        renew_at = self.t + 365 * DAY
        while not dice.chance(self._lapse):  # each round, some customers lapse for good
            self._wait(self._round_wait[0], self._round_wait[1])
            if person.loyalty_member and self.t >= renew_at:
                renew_at += 365 * DAY
                if dice.chance(0.8):
                    self._emit(
                        f"app.{person.app}" if person.app else _WEBSITES[self._line()],
                        RENEWAL,
                        IN,
                        "Renewed Larkspur Plus membership",
                        {"plan": "Larkspur Plus", "years": 1},
                        outcome="renewed",
                    )
                continue
            roll = dice.random()
            if person.loyalty_member and roll < 0.15:
                if person.store_goer and person.home_store:
                    key = person.home_store
                elif person.app:
                    key = f"app.{person.app}"
                else:
                    key = _WEBSITES[self._line()]
                points = 10 * dice.between(5, 60)
                self._emit(
                    key,
                    LOYALTY_ACTIVITY,
                    IN,
                    f"Redeemed {points} loyalty points",
                    {"points": -points},
                )
            elif person.loyalty_member and roll < 0.2:
                self._emit(
                    "post",
                    CAMPAIGN_SENT,
                    OUT,
                    "Posted the seasonal loyalty catalogue",
                    {"campaign": "Loyalty catalogue", "tier": person.traits.get("tier")},
                )
            elif person.newsletter or person.sms_opt_in:
                self._campaign()
            elif roll < 0.3:
                self._after_purchase(self._purchase(repeat=True))

    # -- building blocks ---------------------------------------------------------------------

    def _social_touch(self) -> None:
        dice = self.dice
        platform = dice.pick(self.person.social)
        key = SOCIAL_PAGES[platform]
        roll = dice.random()
        if roll < 0.6:
            action = dice.pick(_SOCIAL_ACTIONS)
            self._emit(
                key,
                SOCIAL_ENGAGEMENT,
                IN,
                f"{action.capitalize()} on {platform}",
                {"platform": platform, "action": action},
            )
        elif roll < 0.9:
            self._emit(
                key,
                AD_CLICK,
                IN,
                f"Clicked a sponsored post on {platform}",
                {"platform": platform, "source": "paid-social"},
            )
        else:
            sentiment = round(dice.random() * 1.5 - 0.6, 2)
            tone = (
                "Praised"
                if sentiment > 0.2
                else "Complained about"
                if sentiment < -0.2
                else "Mentioned"
            )
            self._emit(
                key,
                SOCIAL_MENTION,
                IN,
                f"{tone} Larkspur in a post",
                {"platform": platform},
                sentiment=sentiment,
            )

    def _attend_event(self) -> bool:
        # Only an event coming up within six weeks can be attended.
        for first, last, event in self._events:
            start = first + 10 * HOUR  # doors open at ten
            if self.t < start <= self.t + 6 * WEEK:
                self.t = self.dice.between(start, min(last, start + 3 * DAY))
                self._emit(event.key, EVENT_ATTENDANCE, IN, f"Attended {event.name}")
                return True
        return False

    def _product_view(self) -> None:
        line = self._line()
        product = self.dice.pick(PRODUCTS[line])
        self._emit(
            self._browser(line),
            PRODUCT_VIEW,
            IN,
            f"Viewed {product.name} ({_CURRENCY_SIGN[self.currency]}{product.price:,.2f})",
            {"sku": product.sku, "price": product.price},
        )

    def _question(self) -> None:
        dice = self.dice
        person = self.person
        product = dice.pick(PRODUCTS[self._line()]).name
        topic = dice.pick(_QUESTION_TOPICS)
        conversation = self._open_conversation()
        mood = dice.random() * 0.9 - 0.1
        key = _QUESTION_START.draw(dice)
        if key == "whatsapp" and not person.sms_opt_in and not person.social:
            key = "chat"
        agent = BOT if key == "bot" else dice.pick(AGENTS)
        self._say(
            conversation, key, QUESTION, IN, f"Asked whether the {product} {topic}", agent, mood
        )
        if key != "phone":  # on the phone, the answer is part of the same call
            answer = f"Answered: the {product} {topic}"
            self._say(conversation, key, _MESSAGE_TYPE[key], OUT, answer, agent, mood)
        if key == "bot" and dice.chance(0.35):
            agent = dice.pick(AGENTS)
            self._say(
                conversation, "chat", CHAT_MESSAGE, OUT, "Took over from the assistant", agent, mood
            )
            if dice.chance(0.3):
                self._say(conversation, "phone", CALL, OUT, "Called back to explain", agent, mood)
        elif key in ("mailbox", "whatsapp") and dice.chance(0.2):
            self._say(conversation, "phone", CALL, OUT, "Called back with details", agent, mood)
        self._close(conversation, "answered", 0.9)

    def _styling_session(self) -> None:
        # Booked by chat, held over video: one conversation on two channels.
        dice = self.dice
        conversation = self._open_conversation()
        mood = dice.random() * 0.6 + 0.2
        agent = dice.pick(AGENTS)
        occasion = dice.pick(("a wedding", "a new job", "the holidays", "a capsule wardrobe"))
        booking = f"Asked for a styling session for {occasion}"
        self._say(conversation, "chat", QUESTION, IN, booking, agent, mood)
        self._wait(HOUR, 4 * DAY)
        session = f"Video styling session for {occasion}"
        self._say(conversation, "video", CALL, OUT, session, agent, mood + 0.1)
        self._close(conversation, "looks suggested", 0.95)

    def _quote_request(self) -> None:
        dice = self.dice
        product = dice.pick(PRODUCTS[self._line()]).name
        conversation = self._open_conversation()
        mood = dice.random() * 0.7
        agent = dice.pick(AGENTS)
        self._say(
            conversation,
            "mailbox",
            QUOTE_REQUEST,
            IN,
            f"Asked for a quote: {product}, installed",
            agent,
            mood,
        )
        self._say(
            conversation,
            "mailbox",
            EMAIL,
            OUT,
            "Sent a quote with installation options",
            agent,
            mood,
        )
        if dice.chance(0.4):
            self._say(
                conversation, "phone", CALL, OUT, "Called to walk through the quote", agent, mood
            )
        self._close(conversation, "quote sent", 0.75)

    def _support(self, order: _Order) -> None:
        dice = self.dice
        problem, resolution = dice.pick(_SUPPORT_ISSUES)
        problem = problem.format(order=order.order_id)
        self._wait(HOUR, 5 * DAY)
        conversation = self._open_conversation()
        mood = dice.random() * 0.9 - 0.8
        agent = dice.pick(AGENTS)
        start = _SUPPORT_START.draw(dice)
        if start == "phone" and order.line == ELECTRONICS:
            start = "techline"
        message = _MESSAGE_TYPE[start]
        if message == CALL:
            # A call opens the ticket: the ticket is what marks the customer Post-purchase.
            self._say(conversation, start, CALL, IN, problem, agent, mood)
            self._say(conversation, start, SUPPORT_TICKET, IN, f"Ticket: {problem}", agent, mood)
        else:
            self._say(conversation, start, SUPPORT_TICKET, IN, problem, agent, mood)
            mood += 0.2
            self._say(
                conversation, start, message, OUT, "Replied and asked for details", agent, mood
            )
        for key in _ESCALATION[start]:
            if dice.chance(0.5):
                break
            mood += dice.random() * 0.4
            direction = IN if key == "chat" else OUT
            self._say(
                conversation,
                key,
                _MESSAGE_TYPE[key],
                direction,
                f"Followed up: {problem}",
                agent,
                mood,
            )
        self._close(conversation, resolution, 0.85)

    def _campaign(self) -> None:
        dice = self.dice
        person = self.person
        campaign = self.tp["campaign.newsletter"].spec
        for first, last, seasonal in self._seasonal:
            if first <= self.t <= last:
                campaign = seasonal
                break
        by_sms = person.sms_opt_in and (not person.newsletter or dice.chance(0.3))
        key = "sms.reminders" if by_sms else campaign.key
        name = campaign.name
        attributes = {"campaign": name}
        self._emit(key, CAMPAIGN_SENT, OUT, f"Sent: {name}", attributes)
        # Opening is only measurable for e-mails; an SMS link is clicked straight away.
        if not by_sms:
            if not dice.chance(0.38):
                return
            self._wait(5 * MINUTE, 2 * DAY)
            self._emit(key, CAMPAIGN_OPENED, IN, f"Opened: {name}", attributes)
        if not dice.chance(0.4):
            return
        self._wait(10, 30 * MINUTE)
        self._emit(key, CAMPAIGN_CLICKED, IN, f"Clicked through: {name}", attributes)
        for _ in range(dice.between(0, 2)):
            self._wait(MINUTE, 20 * MINUTE)
            self._product_view()
        if dice.chance(0.45):
            self._wait(5 * MINUTE, 2 * DAY)
            self._after_purchase(self._purchase(repeat=True))

    # -- primitives --------------------------------------------------------------------------

    def _line(self) -> str:
        """Mostly the customer's favourite business line, sometimes another."""
        if self.dice.chance(0.75):
            return self.person.favourite_line
        return self.dice.pick(BUSINESS_LINES)

    def _browser(self, line: str) -> str:
        """Where this customer browses ``line`` now: the app, mobile web or the line's website."""
        roll = self.dice.random()
        if self.person.app and roll < 0.55:
            return f"app.{self.person.app}"
        if roll < 0.75:
            return _WEBSITES[line]
        return "mweb"

    def _wait(self, shortest: int, longest: int) -> None:
        self.t += self.dice.between(shortest, longest)
        if self.t > SPAN_SECONDS:
            raise _DataEnds

    def _open_conversation(self) -> _Conversation:
        dice = self.dice
        key = f"CASE-{dice.getrandbits(64):016X}"
        while key in self.conversation_keys:
            key = f"CASE-{dice.getrandbits(64):016X}"
        self.conversation_keys.add(key)
        conversation = _Conversation(dice.uuid7(UNIX_MS + self.t * 1000), key, self.t)
        self.conversations.append(conversation)
        return conversation

    def _close(self, conversation: _Conversation, outcome: str, probability: float) -> None:
        """Resolve the conversation with ``probability``; the last message carries the outcome."""
        conversation.resolved = self.dice.chance(probability)
        if conversation.resolved:
            last = self.rows.interactions[-1]
            self.rows.interactions[-1] = (*last[:11], outcome, *last[12:])

    def _say(
        self,
        conversation: _Conversation,
        key: str,
        itype: str,
        direction: str,
        summary: str,
        agent: str,
        mood: float,
    ) -> None:
        """One message of a conversation, minutes (a day for e-mail) after the previous one."""
        if conversation.last:
            self._wait(MINUTE, DAY if key == "mailbox" else 2 * HOUR)
        sentiment = round(max(-1.0, min(1.0, mood + self.dice.random() * 0.3 - 0.15)), 2)
        self._emit(
            key,
            itype,
            direction,
            summary,
            conversation=conversation.id,
            sentiment=sentiment,
            agent=agent,
        )
        conversation.last = self.t - 1

    def _emit(
        self,
        key: str,
        itype: str,
        direction: str,
        summary: str,
        attributes: dict[str, Any] | None = None,
        *,
        conversation: str | None = None,
        sentiment: float | None = None,
        outcome: str | None = None,
        agent: str | None = None,
    ) -> None:
        """Record one interaction, and the stage change it causes under the stage rules."""
        touchpoint = self.tp[key]
        channel = touchpoint.channel
        t = self.t
        interaction_id = self.dice.uuid7(UNIX_MS + t * 1000)
        occurred = EPOCH + timedelta(seconds=t)
        self.rows.interactions.append(
            (
                interaction_id,
                self.customer_id,
                touchpoint.id,
                channel,
                occurred,
                occurred + _LAGS[self.dice.between(1, 120)],  # recorded a little later
                itype,
                direction,
                conversation,
                summary,
                sentiment,
                outcome,
                agent,
                orjson.dumps(attributes).decode() if attributes else "{}",
            )
        )
        if not self.count:
            self.first_seen = t
        self.count += 1
        self.last_seen = t
        # No two interactions of a journey share a second: replaying them in time order
        # reproduces the stage history exactly.
        self.t = t + 1
        stage = stage_for(itype, channel)
        if stage is None:
            return
        transition = _classify(self.stage, stage, self.stage_channel, channel)
        if transition is None:
            return
        self.rows.stage_history.append(
            (
                self.customer_id,
                stage,
                self.stage,
                transition,
                occurred,
                interaction_id,
                channel,
                f"{itype} → {stage}",
            )
        )
        self.stage = stage
        self.stage_channel = channel
        self.stage_entered = t
