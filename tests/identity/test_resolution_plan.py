"""Identity resolution's batch planner (``hub.identity.resolution.plan_batch``), tested directly.

No server and no database: the planner is given what the database would know (who holds each
identifier, the customers' state) and its decisions are compared with the rules written out by
hand from docs/ingest.md ("Batch semantics", "Identity resolution", "Journey engine") and the
module docstring.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from hub.core.enums import StageTransition as T
from hub.identity.resolution import (
    BatchPlan,
    CustomerState,
    Draft,
    Guards,
    IdentifierKey,
    MergePlan,
    PlannedConversation,
    plan_batch,
)
from hub.journeys.engine import StageRules
from tests.bounded import bounded

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2024, 5, 2, 12, 0, tzinfo=UTC)
TOUCHPOINT = uuid.UUID("00000000-0000-0000-0000-00000000007e")

EMAIL: IdentifierKey = ("EMAIL", "ana@example.com")
EMAIL_2: IdentifierKey = ("EMAIL", "ana.b@example.com")
EMAIL_3: IdentifierKey = ("EMAIL", "ana@work.example")
PHONE: IdentifierKey = ("PHONE", "+447911123456")
CRM: IdentifierKey = ("CRM_ID", "crm-7")
COOKIE: IdentifierKey = ("COOKIE", "ck-1")
DEVICE: IdentifierKey = ("DEVICE_ID", "dev-1")

# The documented defaults: weak kinds COOKIE and DEVICE_ID, at most 10 identifiers per kind.
GUARDS = Guards(frozenset({"COOKIE", "DEVICE_ID"}), 10)
WEAK_WARNING = (
    "identifiers of other customers matched only through weak kinds (COOKIE, DEVICE_ID): not merged"
)
RULES: StageRules = {
    ("PAGE_VIEW", None): "AWARENESS",
    ("PRODUCT_VIEW", None): "CONSIDERATION",
    ("ORDER", None): "PURCHASE",
}

# Existing customers: ids chosen so that the smallest id is NOT the oldest customer.
OLD_ID = uuid.UUID("00000000-0000-0000-0000-00000000000b")
YOUNG_ID = uuid.UUID("00000000-0000-0000-0000-00000000000a")
THIRD_ID = uuid.UUID("00000000-0000-0000-0000-00000000000c")


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def draft(
    index: int,
    *identities: IdentifierKey,
    hours: float,
    type: str = "EMAIL",
    channel: str = "WEB",
    conversation: str | None = None,
) -> Draft:
    return Draft(
        index=index,
        identities=identities,
        touchpoint_id=TOUCHPOINT,
        channel_code=channel,
        type=type,
        direction="INBOUND",
        occurred_at=at(hours),
        conversation_key=conversation,
        summary=None,
        sentiment=None,
        outcome=None,
        agent=None,
        attributes={},
        idempotency_key=None,
    )


def existing(
    id: uuid.UUID, created_days_ago: int, *held: IdentifierKey, **state: object
) -> CustomerState:
    return CustomerState(
        id=id,
        created_at=NOW - timedelta(days=created_days_ago),
        is_new=False,
        kind_counts=Counter(kind for kind, _ in held),
        **state,  # type: ignore[arg-type]
    )


def sequential_ids() -> Callable[[], uuid.UUID]:
    """Fresh ids for the planner, increasing like uuid7 and far from the existing customers'."""
    counter = itertools.count(0x1000)
    return lambda: uuid.UUID(int=next(counter))


def plan(
    drafts: Sequence[Draft],
    customers: Sequence[tuple[CustomerState, Sequence[IdentifierKey]]] = (),
    guards: Guards = GUARDS,
) -> BatchPlan:
    owners = {key: customer.id for customer, keys in customers for key in keys}
    states = {customer.id: customer for customer, _ in customers}
    return plan_batch(drafts, owners, states, RULES, guards, NOW, sequential_ids())


# --- one interaction ------------------------------------------------------------------------------


def test_unknown_identifiers_create_one_customer_holding_them_all() -> None:
    result = plan([draft(0, EMAIL, PHONE, hours=1)])
    [planned] = result.interactions
    customer = result.customers[planned.customer_id]
    assert planned.created_customer
    assert planned.id != planned.customer_id
    assert planned.matched_identity == EMAIL
    assert planned.warnings == []
    assert result.new_identities == {EMAIL: customer.id, PHONE: customer.id}
    assert result.seen_identities == {EMAIL: at(1), PHONE: at(1)}
    assert (customer.is_new, customer.created_at) == (True, NOW)
    assert (customer.first_seen_at, customer.last_seen_at) == (at(1), at(1))
    assert customer.kind_counts == Counter({"EMAIL": 1, "PHONE": 1})
    assert (result.merges, result.alias) == ([], {})


def test_a_known_identifier_attaches_and_the_new_ones_are_linked() -> None:
    ana = existing(OLD_ID, 30, EMAIL, first_seen_at=at(-50), last_seen_at=at(0))
    result = plan([draft(0, EMAIL, PHONE, hours=1)], [(ana, [EMAIL])])
    [planned] = result.interactions
    assert (planned.customer_id, planned.created_customer) == (OLD_ID, False)
    assert planned.matched_identity == EMAIL
    assert result.new_identities == {PHONE: OLD_ID}
    assert result.seen_identities == {EMAIL: at(1), PHONE: at(1)}
    assert set(result.customers) == {OLD_ID}
    assert ana.kind_counts == Counter({"EMAIL": 1, "PHONE": 1})
    assert (ana.first_seen_at, ana.last_seen_at) == (at(-50), at(1))
    assert ana.touched
    assert (result.merges, planned.warnings) == ([], [])


def test_the_interaction_records_the_first_identifier_its_customer_holds() -> None:
    ana = existing(OLD_ID, 30, PHONE)
    result = plan([draft(0, COOKIE, PHONE, EMAIL, hours=1)], [(ana, [PHONE])])
    # The cookie is new and linked to Ana, so it is the first identifier she holds.
    assert result.interactions[0].matched_identity == COOKIE


# --- several customers: strong identifiers merge, weak ones do not ------------------------------


def test_two_customers_matched_through_strong_identifiers_are_merged_into_the_oldest() -> None:
    old = existing(OLD_ID, 30, EMAIL)
    young = existing(YOUNG_ID, 2, PHONE)  # the smaller id, but known for less time
    result = plan([draft(0, PHONE, EMAIL, hours=1)], [(old, [EMAIL]), (young, [PHONE])])
    assert result.merges == [
        MergePlan(index=0, survivor_id=OLD_ID, merged_ids=(YOUNG_ID,), identity=PHONE)
    ]
    [planned] = result.interactions
    assert (planned.customer_id, planned.created_customer, planned.warnings) == (OLD_ID, False, [])
    assert result.find(YOUNG_ID) == OLD_ID
    assert result.new_identities == {}


def test_on_equal_creation_times_the_smallest_id_survives() -> None:
    first = existing(YOUNG_ID, 5, EMAIL)
    second = existing(OLD_ID, 5, PHONE)
    result = plan([draft(0, EMAIL, PHONE, hours=1)], [(second, [PHONE]), (first, [EMAIL])])
    assert result.merges == [MergePlan(0, YOUNG_ID, (OLD_ID,), PHONE)]


def test_three_customers_merge_into_the_oldest_in_survivor_order() -> None:
    oldest = existing(THIRD_ID, 300, CRM)
    middle = existing(OLD_ID, 30, EMAIL)
    youngest = existing(YOUNG_ID, 3, PHONE)
    result = plan(
        [draft(0, PHONE, EMAIL, CRM, hours=1)],
        [(youngest, [PHONE]), (middle, [EMAIL]), (oldest, [CRM])],
    )
    [merge] = result.merges
    assert (merge.survivor_id, merge.merged_ids) == (THIRD_ID, (OLD_ID, YOUNG_ID))
    # The identifier recorded is the one that matched the (first) merged customer.
    assert merge.identity == EMAIL
    assert result.interactions[0].customer_id == THIRD_ID


def test_a_third_customer_matched_only_weakly_is_left_alone_and_named_in_a_warning() -> None:
    old = existing(OLD_ID, 30, EMAIL)
    young = existing(YOUNG_ID, 2, PHONE)
    browser = existing(THIRD_ID, 300, COOKIE)  # the oldest: it would survive a merge
    result = plan(
        [draft(0, PHONE, EMAIL, COOKIE, hours=1)],
        [(old, [EMAIL]), (young, [PHONE]), (browser, [COOKIE])],
    )
    # The two strongly matched customers merge; the weakly matched one does not, and the
    # interaction says so (docs/ingest.md, "Identity resolution").
    assert result.merges == [MergePlan(0, OLD_ID, (YOUNG_ID,), PHONE)]
    [planned] = result.interactions
    assert (planned.customer_id, planned.warnings) == (OLD_ID, [WEAK_WARNING])
    assert result.find(THIRD_ID) == THIRD_ID
    assert not browser.touched and browser.kind_counts == Counter({"COOKIE": 1})


def test_a_customer_matched_only_through_a_weak_identifier_is_left_alone() -> None:
    ana = existing(YOUNG_ID, 3, EMAIL)
    browser = existing(OLD_ID, 30, COOKIE)  # older: it would survive a merge
    result = plan([draft(0, COOKIE, EMAIL, PHONE, hours=1)], [(ana, [EMAIL]), (browser, [COOKIE])])
    [planned] = result.interactions
    assert planned.customer_id == YOUNG_ID
    assert planned.matched_identity == EMAIL
    assert planned.warnings == [WEAK_WARNING]
    assert (result.merges, result.alias) == ([], {})
    # The cookie stays with its holder, which this interaction does not touch.
    assert result.new_identities == {PHONE: YOUNG_ID}
    assert set(result.seen_identities) == {EMAIL, PHONE}
    assert not browser.touched and browser.kind_counts == Counter({"COOKIE": 1})


def test_weak_identifiers_of_two_customers_never_merge_them() -> None:
    older = existing(OLD_ID, 30, COOKIE)
    younger = existing(YOUNG_ID, 3, DEVICE)
    result = plan([draft(0, DEVICE, COOKIE, hours=1)], [(older, [COOKIE]), (younger, [DEVICE])])
    [planned] = result.interactions
    assert result.merges == []
    assert planned.warnings == [WEAK_WARNING]
    # With no strong match, the survivor rule picks which of them gets the interaction.
    assert planned.customer_id == OLD_ID
    assert result.new_identities == {}


def test_a_weak_identifier_of_a_single_customer_still_attaches() -> None:
    browser = existing(OLD_ID, 30, COOKIE)
    result = plan([draft(0, COOKIE, EMAIL, hours=1)], [(browser, [COOKIE])])
    [planned] = result.interactions
    assert (planned.customer_id, planned.warnings) == (OLD_ID, [])
    assert result.new_identities == {EMAIL: OLD_ID}


# --- guard: at most max_identities_per_kind identifiers of one kind -----------------------------


def test_beyond_the_limit_a_new_identifier_is_not_linked() -> None:
    ana = existing(OLD_ID, 30, EMAIL, EMAIL_2)
    result = plan(
        [draft(0, EMAIL, EMAIL_3, hours=1)], [(ana, [EMAIL, EMAIL_2])], Guards(GUARDS.weak_kinds, 2)
    )
    [planned] = result.interactions
    assert planned.customer_id == OLD_ID
    assert planned.warnings == [
        "EMAIL 'ana@work.example' not linked: the customer already holds 2 identifiers of that kind"
    ]
    assert result.new_identities == {}
    assert ana.kind_counts == Counter({"EMAIL": 2})


def test_a_new_customer_links_no_more_than_the_limit() -> None:
    result = plan(
        [draft(0, EMAIL, EMAIL_2, EMAIL_3, PHONE, hours=1)], guards=Guards(GUARDS.weak_kinds, 2)
    )
    [planned] = result.interactions
    assert set(result.new_identities) == {EMAIL, EMAIL_2, PHONE}
    assert len(planned.warnings) == 1 and planned.warnings[0].startswith("EMAIL 'ana@work.example'")


def test_a_merge_that_would_exceed_the_limit_is_refused() -> None:
    old = existing(OLD_ID, 30, EMAIL, EMAIL_2)
    young = existing(YOUNG_ID, 3, EMAIL_3)
    result = plan(
        [draft(0, EMAIL_3, EMAIL, hours=1)],
        [(old, [EMAIL, EMAIL_2]), (young, [EMAIL_3])],
        Guards(GUARDS.weak_kinds, 2),
    )
    [planned] = result.interactions
    assert (result.merges, result.alias) == ([], {})
    # The interaction goes to the survivor candidate, with the reason.
    assert planned.customer_id == OLD_ID
    assert planned.warnings == [
        "not merged: the merged customer would hold more than 2 identifiers of kind EMAIL"
    ]


def test_a_merge_that_reaches_the_limit_exactly_goes_ahead() -> None:
    old = existing(OLD_ID, 30, EMAIL)
    young = existing(YOUNG_ID, 3, EMAIL_2)
    result = plan(
        [draft(0, EMAIL, EMAIL_2, hours=1)],
        [(old, [EMAIL]), (young, [EMAIL_2])],
        Guards(GUARDS.weak_kinds, 2),
    )
    assert result.merges == [MergePlan(0, OLD_ID, (YOUNG_ID,), EMAIL_2)]


# --- items of one batch referring to each other ---------------------------------------------------


def test_a_later_item_with_an_identifier_of_an_earlier_one_attaches_to_its_new_customer() -> None:
    result = plan([draft(0, EMAIL, hours=1), draft(1, EMAIL, PHONE, hours=2)])
    first, second = result.interactions
    assert (first.created_customer, second.created_customer) == (True, False)
    assert second.customer_id == first.customer_id
    assert result.new_identities == {EMAIL: first.customer_id, PHONE: first.customer_id}
    assert result.seen_identities == {EMAIL: at(2), PHONE: at(2)}


def test_new_customers_of_one_batch_proved_one_person_are_joined_without_a_ledger_entry() -> None:
    # docs/ingest.md: item 1 brings an e-mail, item 2 a phone, item 3 both.
    result = plan(
        [draft(0, EMAIL, hours=1), draft(1, PHONE, hours=2), draft(2, EMAIL, PHONE, hours=3)]
    )
    by_email, by_phone, by_both = result.interactions
    survivor = by_email.customer_id
    assert result.merges == []
    assert result.alias == {by_phone.customer_id: survivor}
    assert {result.find(p.customer_id) for p in result.interactions} == {survivor}
    assert by_both.customer_id == survivor and not by_both.created_customer
    assert {key: result.find(cid) for key, cid in result.new_identities.items()} == {
        EMAIL: survivor,
        PHONE: survivor,
    }
    joined = result.customers[survivor]
    assert joined.kind_counts == Counter({"EMAIL": 1, "PHONE": 1})
    assert (joined.first_seen_at, joined.last_seen_at) == (at(1), at(3))
    assert not result.customers[by_phone.customer_id].touched


def test_a_join_within_the_batch_takes_the_stage_entered_last() -> None:
    # As a merge (docs/ingest.md, "Merge ledger"): the stage of whichever customer entered its
    # stage last, here the one created by the order, not the first customer's AWARENESS.
    result = plan(
        [
            draft(0, EMAIL, hours=1, type="PAGE_VIEW"),
            draft(1, PHONE, hours=2, type="ORDER", channel="PHYSICAL"),
            draft(2, EMAIL, PHONE, hours=3),  # no stage signal of its own
        ]
    )
    by_email, by_phone, _ = result.interactions
    joined = result.customers[by_email.customer_id]
    assert result.alias == {by_phone.customer_id: by_email.customer_id}
    assert (joined.current_stage, joined.stage_entered_at, joined.stage_channel_code) == (
        "PURCHASE",
        at(2),
        "PHYSICAL",
    )
    # The history keeps both entries, in time order, both on the joined customer.
    assert [(result.find(c.customer_id), c.stage, c.entered_at) for c in result.stage_changes] == [
        (by_email.customer_id, "AWARENESS", at(1)),
        (by_email.customer_id, "PURCHASE", at(2)),
    ]


def test_a_new_customer_of_the_batch_joins_an_existing_one_without_a_ledger_entry() -> None:
    ana = existing(OLD_ID, 30, EMAIL)
    result = plan([draft(0, PHONE, hours=1), draft(1, EMAIL, PHONE, hours=2)], [(ana, [EMAIL])])
    by_phone, by_both = result.interactions
    assert result.merges == []  # nothing stored yet, so nothing to undo
    assert result.alias == {by_phone.customer_id: OLD_ID}
    assert by_both.customer_id == OLD_ID
    assert result.find(result.new_identities[PHONE]) == OLD_ID


# --- time order -----------------------------------------------------------------------------------


def test_items_are_resolved_in_time_order_and_reported_in_input_order() -> None:
    result = plan([draft(0, EMAIL, PHONE, hours=2), draft(1, EMAIL, hours=1)])
    later, earlier = result.interactions
    assert [p.draft.index for p in result.interactions] == [0, 1]
    assert (earlier.created_customer, later.created_customer) == (True, False)
    assert later.customer_id == earlier.customer_id


def test_items_at_the_same_moment_are_resolved_in_input_order() -> None:
    result = plan([draft(0, EMAIL, hours=1), draft(1, EMAIL, hours=1)])
    assert [p.created_customer for p in result.interactions] == [True, False]


def test_the_customer_created_first_in_time_survives_a_join_within_the_batch() -> None:
    result = plan(
        [draft(0, PHONE, hours=2), draft(1, EMAIL, hours=1), draft(2, EMAIL, PHONE, hours=3)]
    )
    by_phone, by_email, _ = result.interactions
    assert result.alias == {by_phone.customer_id: by_email.customer_id}


def test_a_back_filled_batch_builds_its_stage_history_in_time_order() -> None:
    result = plan(
        [
            draft(0, EMAIL, hours=3, type="ORDER"),
            draft(1, EMAIL, hours=1, type="PAGE_VIEW"),
            draft(2, EMAIL, hours=2, type="PRODUCT_VIEW", channel="MOBILE"),
        ]
    )
    ids = {p.draft.index: p.id for p in result.interactions}
    history = [
        (c.stage, c.previous_stage, c.transition, c.entered_at, c.interaction_id)
        for c in result.stage_changes
    ]
    assert history == [
        ("AWARENESS", None, T.INITIAL, at(1), ids[1]),
        ("CONSIDERATION", "AWARENESS", T.FORWARD, at(2), ids[2]),
        ("PURCHASE", "CONSIDERATION", T.FORWARD, at(3), ids[0]),
    ]
    customer = result.customers[result.interactions[0].customer_id]
    assert (customer.current_stage, customer.stage_entered_at) == ("PURCHASE", at(3))


def test_a_late_interaction_counts_for_first_seen_but_does_not_move_the_stage() -> None:
    ana = existing(
        OLD_ID,
        30,
        EMAIL,
        current_stage="PURCHASE",
        stage_entered_at=at(10),
        stage_channel_code="WEB",
        first_seen_at=at(5),
        last_seen_at=at(12),
    )
    result = plan([draft(0, EMAIL, hours=2, type="PAGE_VIEW", channel="MOBILE")], [(ana, [EMAIL])])
    assert result.stage_changes == []
    assert (ana.current_stage, ana.stage_entered_at, ana.stage_channel_code) == (
        "PURCHASE",
        at(10),
        "WEB",
    )
    assert (ana.first_seen_at, ana.last_seen_at) == (at(2), at(12))


def test_identifiers_are_seen_at_their_latest_interaction_and_conversations_span_theirs() -> None:
    result = plan(
        [
            draft(0, EMAIL, hours=2, conversation="chat-1"),
            draft(1, EMAIL, hours=3, conversation="chat-1"),
            draft(2, EMAIL, hours=1, conversation="chat-1"),
        ]
    )
    customer = result.interactions[0].customer_id
    assert result.seen_identities == {EMAIL: at(3)}
    assert result.conversations == {"chat-1": PlannedConversation("chat-1", customer, at(1), at(3))}


# --- property: one call decides who is who exactly as the same items sent one by one ------------

UNIVERSE = [EMAIL, EMAIL_2, PHONE, CRM, COOKIE, DEVICE]
_DRAFTS = st.lists(
    st.tuples(
        st.lists(st.sampled_from(UNIVERSE), min_size=1, max_size=3, unique=True),
        st.integers(0, 4),
    ),
    min_size=1,
    max_size=8,
).map(lambda items: [draft(i, *keys, hours=h) for i, (keys, h) in enumerate(items)])
_GUARDS = st.sampled_from([GUARDS, Guards(GUARDS.weak_kinds, 1), Guards(frozenset(), 10)])

Partition = frozenset[frozenset[int]]


def _partition(person: dict[int, uuid.UUID]) -> Partition:
    groups: dict[uuid.UUID, set[int]] = {}
    for index, customer in person.items():
        groups.setdefault(customer, set()).add(index)
    return frozenset(frozenset(group) for group in groups.values())


def _people_in_one_call(drafts: list[Draft], guards: Guards) -> Partition:
    result = plan(drafts, guards=guards)
    return _partition({p.draft.index: result.find(p.customer_id) for p in result.interactions})


def _people_one_by_one(drafts: list[Draft], guards: Guards, apply_merges: bool = True) -> Partition:
    """The oracle: each item its own call, in time order, each call a little later than the last
    and seeing what the previous ones stored; a planned merge is carried out (identities and
    counts move to the survivor) and the item planned again, as ``hub.ingest.record`` does."""
    new_id = sequential_ids()
    owners: dict[IdentifierKey, uuid.UUID] = {}
    stored: dict[uuid.UUID, CustomerState] = {}
    merged_into: dict[uuid.UUID, uuid.UUID] = {}
    person: dict[int, uuid.UUID] = {}
    for call, item in enumerate(sorted(drafts, key=lambda d: (d.occurred_at, d.index))):
        now = NOW + timedelta(seconds=call)
        for _ in bounded(100, "merges settling"):
            copies = {
                cid: replace(c, kind_counts=Counter(c.kind_counts)) for cid, c in stored.items()
            }
            result = plan_batch([item], owners, copies, RULES, guards, now, new_id)
            if not result.merges or not apply_merges:
                break
            for merge in result.merges:
                for merged in merge.merged_ids:
                    merged_into[merged] = merge.survivor_id
                    stored[merge.survivor_id].kind_counts += stored.pop(merged).kind_counts
                    owners = {k: merge.survivor_id if v == merged else v for k, v in owners.items()}
        for cid, state in result.customers.items():
            if state.is_new and cid not in result.alias:
                stored[cid] = CustomerState(cid, now, False, kind_counts=Counter(state.kind_counts))
            elif cid in stored:
                stored[cid].kind_counts = Counter(state.kind_counts)
        owners.update({key: result.find(cid) for key, cid in result.new_identities.items()})
        person[item.index] = result.find(result.interactions[0].customer_id)
    for index, customer in person.items():
        while customer in merged_into:
            customer = merged_into[customer]
        person[index] = customer
    return _partition(person)


@settings(max_examples=150, deadline=None)
@given(_DRAFTS, _GUARDS)
def test_one_call_groups_interactions_into_people_as_calls_one_by_one_would(
    drafts: list[Draft], guards: Guards
) -> None:
    # "A single recordInteraction is the same code with a batch of one", and a batch is taken
    # in occurredAt order: sending the items one by one in that order finds the same people.
    assert _people_in_one_call(drafts, guards) == _people_one_by_one(drafts, guards)


def test_the_property_catches_an_oracle_that_forgets_merges() -> None:
    """Negative control: calls one by one that never carry out a planned merge leave two
    customers where the batch found one person; the comparison above notices."""
    counterexample = find(
        _DRAFTS,
        lambda drafts: (
            _people_in_one_call(drafts, GUARDS)
            != _people_one_by_one(drafts, GUARDS, apply_merges=False)
        ),
        settings=settings(suppress_health_check=list(HealthCheck), database=None),
    )
    assert len(counterexample) >= 3
