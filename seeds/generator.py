"""Turning a seed into rows: people, their identities and their journeys, a chunk at a time."""

from __future__ import annotations

import random
from collections.abc import Mapping

import orjson

from hub.seeds.dice import Dice
from hub.seeds.journeys import JourneyOutcome, JourneySimulator, PlacedTouchpoint, Rows
from hub.seeds.people import Person, PersonFactory
from hub.seeds.timeline import HOUR, SPAN_SECONDS, UNIX_MS, at

ANONYMOUS_SHARE = 0.12
"""Visitors known only by cookies, devices or social handles: they never get past Awareness."""


class DemoGenerator:
    """Deterministic: the same arguments give the same rows, chunk after chunk.

    The random stream is keyed by the seed *and* the number of customers already in the
    database, so seeding again (same seed or not) continues with fresh ids instead of repeating
    the ones already stored; ``taken`` holds identifier values (by kind) that must not be reused.
    """

    def __init__(
        self,
        seed: int,
        *,
        customers: int,
        existing_customers: int,
        touchpoints: Mapping[str, PlacedTouchpoint],
        taken: dict[str, set[str]],
        conversation_keys: set[str],
        activity: float = 1.0,
    ) -> None:
        # A str seed is hashed with SHA-512 by random.seed: stable across runs and platforms.
        self.dice = Dice(random.Random(f"hub-demo:{seed}:{existing_customers}"))
        self.people = PersonFactory(self.dice, taken)
        self.journeys = JourneySimulator(self.dice, touchpoints, conversation_keys, activity)
        self.customers = customers
        self.made = 0

    def chunk(self, size: int) -> Rows:
        dice = self.dice
        rows = Rows()
        for _ in range(size):
            # Customer n first shows up at a uniformly random moment of the n-th slice of the
            # calendar: uniform overall, yet customers are made (and their version-7 ids
            # issued) in time order, as live traffic would have created them.
            start = int((self.made + dice.random()) * (SPAN_SECONDS - HOUR) / self.customers)
            self.made += 1
            customer_id = dice.uuid7(UNIX_MS + start * 1000)
            person = self.people.make(anonymous=dice.chance(ANONYMOUS_SHARE), first_visit=start)
            outcome = self.journeys.simulate(customer_id, person, start, rows)
            add_customer(rows, customer_id, person, outcome)
        return rows


def add_customer(rows: Rows, customer_id: str, person: Person, outcome: JourneyOutcome) -> None:
    """The customer's row and identity rows, once their journey has been simulated."""
    first_seen, last_seen = at(outcome.first_seen), at(outcome.last_seen)
    # Traits were learnt when the customer first showed up.
    learnt = first_seen.isoformat()
    rows.customers.append(
        (
            customer_id,
            person.display_name,
            orjson.dumps(person.traits).decode(),
            orjson.dumps(dict.fromkeys(person.traits, learnt)).decode(),
            outcome.stage,
            at(outcome.stage_entered) if outcome.stage_entered is not None else None,
            first_seen,
            last_seen,
            first_seen,  # created_at
            last_seen,  # updated_at
        )
    )
    for kind, value in person.identities:
        rows.identities.append((customer_id, kind, value, first_seen, last_seen))
