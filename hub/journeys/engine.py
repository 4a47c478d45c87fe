"""The journey engine: stage rules from the database, applied to interactions as they arrive.

A rule maps an interaction type, optionally on one channel, to the stage it signals; the rule for
the interaction's channel wins over the channel-less one. A signalled stage different from the
current one is a change (forward or backward); the same stage on another channel is a LOOPING
transition (the customer changed channel within the stage); both are written to
``stage_history`` with the interaction that caused them.

**Late interactions**: an interaction that happened before the newest signal the customer has had
(``stage_signal_at``: the interaction that entered the current stage, or a later one that
confirmed it, on the same channel or LOOPING to another) does not move the stage, whatever order
they arrive in (a back-fill, a delayed channel): the stage is decided by occurrence time, it
reflects the newest signal, and history is never rewritten into the past. Its timestamps still
count for first/last seen. A customer with no ``stage_signal_at`` (a manual stage change before
migration 0016) is compared with ``stage_entered_at``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from hub.core.enums import StageCode, StageTransition
from hub.journeys.rules import classify_transition

StageRules = dict[tuple[str, str | None], str]


class StageState(Protocol):
    id: uuid.UUID
    current_stage: str | None
    stage_entered_at: datetime | None
    stage_channel_code: str | None
    stage_signal_at: datetime | None


class StageSignal(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def channel_code(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...


@dataclass(frozen=True)
class StageChangePlan:
    customer_id: uuid.UUID
    stage: str
    previous_stage: str | None
    transition: StageTransition
    entered_at: datetime
    interaction_id: uuid.UUID | None
    channel_code: str | None
    reason: str


def rule_for(rules: StageRules, interaction_type: str, channel_code: str) -> str | None:
    """The stage an interaction signals: the channel's own rule first, then the general one."""
    return rules.get((interaction_type, channel_code)) or rules.get((interaction_type, None))


def stage_signal_time(customer: StageState) -> datetime | None:
    """When the customer's newest stage signal happened (``stage_entered_at`` before 0016)."""
    return customer.stage_signal_at or customer.stage_entered_at


def next_stage(
    customer: StageState, signal: StageSignal, interaction_id: uuid.UUID, rules: StageRules
) -> StageChangePlan | None:
    """Apply one interaction to ``customer`` (mutated in place); the change to record, if any."""
    stage = rule_for(rules, signal.type, signal.channel_code)
    if stage is None:
        return None
    newest = stage_signal_time(customer)
    if newest is not None and signal.occurred_at < newest:
        return None  # late interaction: see the module docstring
    customer.stage_signal_at = signal.occurred_at
    previous = StageCode(customer.current_stage) if customer.current_stage else None
    transition = classify_transition(
        previous, StageCode(stage), customer.stage_channel_code, signal.channel_code
    )
    customer.stage_channel_code = signal.channel_code
    if transition is None:
        return None
    if transition is not StageTransition.LOOPING:
        customer.current_stage = stage
        customer.stage_entered_at = signal.occurred_at
    channel_part = f" on {signal.channel_code}" if signal.channel_code else ""
    return StageChangePlan(
        customer_id=customer.id,
        stage=stage,
        previous_stage=previous.value if previous else None,
        transition=transition,
        entered_at=signal.occurred_at,
        interaction_id=interaction_id,
        channel_code=signal.channel_code,
        reason=f"rule: {signal.type}{channel_part} → {stage}",
    )
