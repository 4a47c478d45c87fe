from __future__ import annotations

from hub.core.enums import StageCode as S
from hub.core.enums import StageTransition as T
from hub.journeys.rules import classify_transition


def test_transitions_are_classified_by_stage_order_and_channel() -> None:
    assert classify_transition(None, S.AWARENESS, None, "WEB") is T.INITIAL
    assert classify_transition(S.AWARENESS, S.PURCHASE, "WEB", "WEB") is T.FORWARD
    assert classify_transition(S.RETENTION, S.CONSIDERATION, "WEB", "MOBILE") is T.BACKWARD
    assert classify_transition(S.PURCHASE, S.PURCHASE, "WEB", "PHYSICAL") is T.LOOPING
    assert classify_transition(S.PURCHASE, S.PURCHASE, "WEB", "WEB") is None
