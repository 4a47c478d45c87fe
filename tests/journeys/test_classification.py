"""Journey classification, tested directly: ``classify_transition``, ``rule_for``, ``next_stage``.

Expected values come from docs/ingest.md ("Journey engine") and the stage order of the README
(Awareness → Consideration → Purchase → Post-purchase → Retention), written out by hand.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from hub.core.enums import StageCode as S
from hub.core.enums import StageTransition as T
from hub.journeys.engine import StageChangePlan, StageRules, next_stage, rule_for
from hub.journeys.rules import classify_transition

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
CUSTOMER = uuid.UUID("00000000-0000-0000-0000-0000000000c1")
INTERACTION = uuid.UUID("00000000-0000-0000-0000-0000000000a1")

# The journey's order, from the README; not taken from hub.core.enums.STAGE_ORDER on purpose.
JOURNEY = [S.AWARENESS, S.CONSIDERATION, S.PURCHASE, S.POST_PURCHASE, S.RETENTION]

RULES: StageRules = {
    ("PAGE_VIEW", None): "AWARENESS",
    ("PRODUCT_VIEW", None): "CONSIDERATION",
    ("ORDER", None): "PURCHASE",
    ("SUPPORT_TICKET", None): "POST_PURCHASE",
    ("REPEAT_ORDER", None): "RETENTION",
    # A store visit is a purchase in the store but research on the web.
    ("STORE_VISIT", None): "CONSIDERATION",
    ("STORE_VISIT", "PHYSICAL"): "PURCHASE",
    # Only the assisted channel's calls signal anything.
    ("CALL", "ASSISTED"): "POST_PURCHASE",
}


@dataclass
class Customer:
    id: uuid.UUID = CUSTOMER
    current_stage: str | None = None
    stage_entered_at: datetime | None = None
    stage_channel_code: str | None = None
    stage_signal_at: datetime | None = None


@dataclass(frozen=True)
class Signal:
    type: str
    channel_code: str
    occurred_at: datetime


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


# --- classify_transition -------------------------------------------------------------------------


@pytest.mark.parametrize("stage", JOURNEY)
@pytest.mark.parametrize("channel", [None, "WEB"])
def test_the_first_stage_is_initial(stage: S, channel: str | None) -> None:
    assert classify_transition(None, stage, None, channel) is T.INITIAL


@pytest.mark.parametrize(
    ("previous", "stage", "expected"),
    [
        (S.AWARENESS, S.CONSIDERATION, T.FORWARD),
        (S.AWARENESS, S.RETENTION, T.FORWARD),  # skipping stages is still forward
        (S.CONSIDERATION, S.PURCHASE, T.FORWARD),
        (S.PURCHASE, S.POST_PURCHASE, T.FORWARD),
        (S.POST_PURCHASE, S.RETENTION, T.FORWARD),
        (S.CONSIDERATION, S.AWARENESS, T.BACKWARD),
        (S.RETENTION, S.AWARENESS, T.BACKWARD),
        (S.RETENTION, S.PURCHASE, T.BACKWARD),  # a repeat purchase after loyalty lapses
        (S.POST_PURCHASE, S.PURCHASE, T.BACKWARD),
    ],
)
@pytest.mark.parametrize("channels", [("WEB", "WEB"), ("WEB", "MOBILE"), (None, "WEB")])
def test_another_stage_is_forward_or_backward_by_journey_order_whatever_the_channel(
    previous: S, stage: S, expected: T, channels: tuple[str | None, str]
) -> None:
    assert classify_transition(previous, stage, *channels) is expected


def test_every_pair_of_different_stages_is_forward_exactly_when_later_in_the_journey() -> None:
    for i, previous in enumerate(JOURNEY):
        for j, stage in enumerate(JOURNEY):
            if i != j:
                expected = T.FORWARD if j > i else T.BACKWARD
                assert classify_transition(previous, stage, "WEB", "WEB") is expected


@pytest.mark.parametrize("stage", JOURNEY)
def test_same_stage_on_another_channel_is_looping_and_on_the_same_channel_no_change(
    stage: S,
) -> None:
    assert classify_transition(stage, stage, "WEB", "PHYSICAL") is T.LOOPING
    assert classify_transition(stage, stage, "WEB", "WEB") is None


def test_same_stage_without_a_known_previous_channel_is_no_change() -> None:
    # A stage set by hand (setJourneyStage) has no channel that confirmed it: nothing to loop from.
    assert classify_transition(S.PURCHASE, S.PURCHASE, None, "WEB") is None


# --- rule_for: the channel's own rule wins over the channel-less one -----------------------------


def test_the_channel_rule_wins_over_the_general_rule() -> None:
    assert rule_for(RULES, "STORE_VISIT", "PHYSICAL") == "PURCHASE"
    assert rule_for(RULES, "STORE_VISIT", "WEB") == "CONSIDERATION"


def test_a_channel_rule_applies_on_its_channel_only() -> None:
    assert rule_for(RULES, "CALL", "ASSISTED") == "POST_PURCHASE"
    assert rule_for(RULES, "CALL", "OUTBOUND") is None


def test_a_type_without_a_rule_signals_nothing() -> None:
    assert rule_for(RULES, "EMAIL", "OUTBOUND") is None
    assert rule_for({}, "ORDER", "WEB") is None


# --- next_stage: one interaction applied to one customer -----------------------------------------


def test_a_type_without_a_rule_changes_nothing() -> None:
    customer = Customer(CUSTOMER, "PURCHASE", at(0), "WEB")
    before = replace(customer)
    assert next_stage(customer, Signal("EMAIL", "MOBILE", at(1)), INTERACTION, RULES) is None
    assert customer == before


def test_the_first_signal_sets_the_initial_stage() -> None:
    customer = Customer()
    change = next_stage(customer, Signal("STORE_VISIT", "PHYSICAL", at(1)), INTERACTION, RULES)
    assert change == StageChangePlan(
        customer_id=CUSTOMER,
        stage="PURCHASE",
        previous_stage=None,
        transition=T.INITIAL,
        entered_at=at(1),
        interaction_id=INTERACTION,
        channel_code="PHYSICAL",
        reason="rule: STORE_VISIT on PHYSICAL → PURCHASE",
    )
    assert customer == Customer(CUSTOMER, "PURCHASE", at(1), "PHYSICAL", at(1))


def test_forward_and_backward_move_the_stage_and_its_entry_time() -> None:
    customer = Customer(CUSTOMER, "CONSIDERATION", at(0), "WEB")
    forward = next_stage(customer, Signal("ORDER", "MOBILE", at(2)), INTERACTION, RULES)
    assert forward is not None
    assert (forward.transition, forward.previous_stage, forward.stage) == (
        T.FORWARD,
        "CONSIDERATION",
        "PURCHASE",
    )
    assert customer == Customer(CUSTOMER, "PURCHASE", at(2), "MOBILE", at(2))
    backward = next_stage(customer, Signal("PAGE_VIEW", "MOBILE", at(3)), INTERACTION, RULES)
    assert backward is not None
    assert (backward.transition, backward.previous_stage, backward.stage) == (
        T.BACKWARD,
        "PURCHASE",
        "AWARENESS",
    )
    assert backward.reason == "rule: PAGE_VIEW on MOBILE → AWARENESS"
    assert customer == Customer(CUSTOMER, "AWARENESS", at(3), "MOBILE", at(3))


def test_looping_keeps_the_stage_and_its_entry_time_and_takes_the_new_channel() -> None:
    customer = Customer(CUSTOMER, "PURCHASE", at(0), "WEB")
    change = next_stage(customer, Signal("STORE_VISIT", "PHYSICAL", at(5)), INTERACTION, RULES)
    assert change == StageChangePlan(
        customer_id=CUSTOMER,
        stage="PURCHASE",
        previous_stage="PURCHASE",
        transition=T.LOOPING,
        entered_at=at(5),
        interaction_id=INTERACTION,
        channel_code="PHYSICAL",
        reason="rule: STORE_VISIT on PHYSICAL → PURCHASE",
    )
    # Looping keeps the entry time; the newest signal is the looping one.
    assert customer == Customer(CUSTOMER, "PURCHASE", at(0), "PHYSICAL", at(5))


def test_the_same_stage_on_the_same_channel_writes_nothing() -> None:
    customer = Customer(CUSTOMER, "PURCHASE", at(0), "WEB")
    assert next_stage(customer, Signal("ORDER", "WEB", at(5)), INTERACTION, RULES) is None
    # Nothing written, but the signal is the newest: an older one arriving later is late.
    assert customer == Customer(CUSTOMER, "PURCHASE", at(0), "WEB", at(5))


@pytest.mark.parametrize(
    "signal",
    [
        Signal("PAGE_VIEW", "WEB", at(-1)),  # would be backward
        Signal("REPEAT_ORDER", "WEB", at(-1)),  # would be forward
        Signal("STORE_VISIT", "PHYSICAL", at(-0.001)),  # would be looping
    ],
)
def test_a_late_interaction_does_not_move_the_stage(signal: Signal) -> None:
    customer = Customer(CUSTOMER, "PURCHASE", at(0), "WEB")
    assert next_stage(customer, signal, INTERACTION, RULES) is None
    assert customer == Customer(CUSTOMER, "PURCHASE", at(0), "WEB")


def test_an_interaction_at_the_very_moment_of_entry_is_not_late() -> None:
    # "Happened before the customer entered the current stage": the same instant is not before.
    customer = Customer(CUSTOMER, "PURCHASE", at(0), "WEB")
    change = next_stage(customer, Signal("SUPPORT_TICKET", "WEB", at(0)), INTERACTION, RULES)
    assert change is not None and change.transition is T.FORWARD
    assert customer == Customer(CUSTOMER, "POST_PURCHASE", at(0), "WEB", at(0))


# --- property: applied in time order, the stage reflects the newest signal ----------------------

_SIGNALS = st.lists(
    st.builds(
        Signal,
        st.sampled_from(["PAGE_VIEW", "PRODUCT_VIEW", "ORDER", "STORE_VISIT", "CALL", "EMAIL"]),
        st.sampled_from(["WEB", "PHYSICAL", "ASSISTED"]),
        st.integers(0, 50).map(lambda minutes: T0 + timedelta(minutes=minutes)),
    ),
    max_size=12,
)


def _history(signals: list[Signal]) -> tuple[Customer, list[StageChangePlan]]:
    customer = Customer()
    changes = []
    for signal in sorted(signals, key=lambda s: s.occurred_at):
        change = next_stage(customer, signal, INTERACTION, RULES)
        if change is not None:
            changes.append(change)
    return customer, changes


def _newest_signalled_stage(signals: list[Signal]) -> str | None:
    """The oracle from the docs: the stage the newest stage-signalling interaction names."""
    table = {
        ("PAGE_VIEW", "WEB"): "AWARENESS",
        ("PAGE_VIEW", "PHYSICAL"): "AWARENESS",
        ("PAGE_VIEW", "ASSISTED"): "AWARENESS",
        ("PRODUCT_VIEW", "WEB"): "CONSIDERATION",
        ("PRODUCT_VIEW", "PHYSICAL"): "CONSIDERATION",
        ("PRODUCT_VIEW", "ASSISTED"): "CONSIDERATION",
        ("ORDER", "WEB"): "PURCHASE",
        ("ORDER", "PHYSICAL"): "PURCHASE",
        ("ORDER", "ASSISTED"): "PURCHASE",
        ("STORE_VISIT", "WEB"): "CONSIDERATION",
        ("STORE_VISIT", "PHYSICAL"): "PURCHASE",
        ("STORE_VISIT", "ASSISTED"): "CONSIDERATION",
        ("CALL", "ASSISTED"): "POST_PURCHASE",
    }
    stage = None
    for signal in sorted(signals, key=lambda s: s.occurred_at):
        stage = table.get((signal.type, signal.channel_code), stage)
    return stage


def _stage_is_newest_signal(
    signals: list[Signal], oracle: Callable[[list[Signal]], str | None] = _newest_signalled_stage
) -> bool:
    customer, changes = _history(signals)
    expected = oracle(signals)
    moves = [c for c in changes if c.transition is not T.LOOPING]
    return (
        customer.current_stage == expected
        # every change but the first is classified against the one before it
        and [c.transition is T.INITIAL for c in changes] == [i == 0 for i in range(len(changes))]
        and all(a.stage == b.previous_stage for a, b in pairwise(moves))
        and (not moves or customer.stage_entered_at == moves[-1].entered_at)
    )


@settings(max_examples=300, deadline=None)
@given(_SIGNALS)
def test_in_time_order_the_stage_reflects_the_newest_signal(signals: list[Signal]) -> None:
    assert _stage_is_newest_signal(signals)


def test_the_property_catches_a_wrong_oracle() -> None:
    """Negative control: an oracle that forgets the channel rule (STORE_VISIT is always
    CONSIDERATION) is caught on a generated history."""

    def channel_blind(signals: list[Signal]) -> str | None:
        stage = None
        for signal in sorted(signals, key=lambda s: s.occurred_at):
            stage = RULES.get((signal.type, None), stage)
        return stage

    counterexample = find(
        _SIGNALS,
        lambda signals: not _stage_is_newest_signal(signals, channel_blind),
        # Derandomized with room to search: the control must find its counterexample on every
        # run, not on most (at 100 random examples it missed now and then).
        settings=settings(
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
            max_examples=2000,
        ),
    )
    assert any(s.type in {"STORE_VISIT", "CALL"} for s in counterexample)


@settings(max_examples=300, deadline=None)
@given(
    _SIGNALS.map(lambda signals: list({s.occurred_at: s for s in signals}.values())),
    st.randoms(use_true_random=False),
)
def test_in_any_arrival_order_the_stage_is_decided_by_occurrence_time(
    signals: list[Signal], shuffler: random.Random
) -> None:
    """Signals at distinct times arriving in any order (late, delayed channels) end in the stage
    the newest one names, and no change is recorded before one already recorded."""
    arrival = list(signals)
    shuffler.shuffle(arrival)
    customer = Customer()
    changes = [
        change
        for signal in arrival
        if (change := next_stage(customer, signal, INTERACTION, RULES)) is not None
    ]
    assert customer.current_stage == _newest_signalled_stage(signals)
    assert [c.entered_at for c in changes] == sorted({c.entered_at for c in changes})


def test_a_late_signal_older_than_a_confirmation_does_not_move_the_stage_back() -> None:
    """Purchase entered at 1h, confirmed on another channel at 3h (LOOPING); a product view
    from 2h arriving last is older than the newest signal: no change (before migration 0016 it
    was compared with the stage's entry at 1h and moved the stage back)."""
    customer = Customer()
    arrivals = [
        Signal("PRODUCT_VIEW", "WEB", at(0)),
        Signal("ORDER", "WEB", at(1)),
        Signal("ORDER", "PHYSICAL", at(3)),
        Signal("PRODUCT_VIEW", "WEB", at(2)),
    ]
    changes = [next_stage(customer, signal, INTERACTION, RULES) for signal in arrivals]
    assert [(c.stage, c.transition) if c else None for c in changes] == [
        ("CONSIDERATION", T.INITIAL),
        ("PURCHASE", T.FORWARD),
        ("PURCHASE", T.LOOPING),
        None,
    ]
    assert (customer.current_stage, customer.stage_entered_at, customer.stage_signal_at) == (
        "PURCHASE",
        at(1),
        at(3),
    )
