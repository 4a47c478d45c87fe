"""Pure journey rules shared by the journey engine, the seed generator and analytics."""

from __future__ import annotations

from hub.core.enums import STAGE_ORDER, StageCode, StageTransition


def classify_transition(
    previous_stage: StageCode | None,
    stage: StageCode,
    previous_channel: str | None,
    channel: str | None,
) -> StageTransition | None:
    """How moving from ``previous_stage`` to ``stage`` counts; None when it is no change at all.

    Same stage on another channel is a LOOPING transition (the customer changed channel within
    the stage); same stage on the same channel is not a change.
    """
    if previous_stage is None:
        return StageTransition.INITIAL
    if stage == previous_stage:
        if channel is not None and previous_channel is not None and channel != previous_channel:
            return StageTransition.LOOPING
        return None
    if STAGE_ORDER[stage] > STAGE_ORDER[previous_stage]:
        return StageTransition.FORWARD
    return StageTransition.BACKWARD
