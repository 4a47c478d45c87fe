"""Fast draws from one ``random.Random``.

``Random.randint``, ``choice`` and ``choices`` each go through several Python-level calls; the
generator makes tens of millions of draws, so these helpers use a single ``random()`` each. The
results are still a pure function of the seed.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from itertools import accumulate
from typing import Generic, TypeVar

V = TypeVar("V")

_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 9562 variant
_UUID7_SET = (0x7000 << 64) | (0x8000 << 48)  # version 7, RFC 9562 variant


class Dice:
    __slots__ = ("getrandbits", "random", "rng")

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.random = rng.random
        self.getrandbits = rng.getrandbits

    def chance(self, probability: float) -> bool:
        return self.random() < probability

    def between(self, lowest: int, highest: int) -> int:
        """An integer in [lowest, highest], both included."""
        return lowest + int(self.random() * (highest - lowest + 1))

    def pick(self, items: Sequence[V]) -> V:
        return items[int(self.random() * len(items))]

    def uuid4(self) -> str:
        """A version-4 UUID made of the stream's bits, as 32 hex digits (asyncpg takes these)."""
        return f"{self.getrandbits(128) & _UUID_CLEAR | _UUID4_SET:032x}"

    def uuid7(self, unix_ms: int) -> str:
        """A version-7 UUID for a row created at ``unix_ms``: the stream's bits after the time.

        Time-ordered like the ids the hub gives live rows (``hub.core.ids.uuid7``), so rows created
        in time order land at the end of their indexes instead of at random pages.
        """
        return f"{unix_ms << 80 | self.getrandbits(80) & _UUID_CLEAR | _UUID7_SET:032x}"


class Weighted(Generic[V]):
    """A fixed weighted choice, its cumulative weights computed once."""

    __slots__ = ("cumulative", "items", "total")

    def __init__(self, pairs: Iterable[tuple[V, float]]) -> None:
        items, weights = zip(*pairs, strict=True)
        self.items: tuple[V, ...] = items
        self.cumulative = list(accumulate(weights))
        self.total = self.cumulative[-1]

    def draw(self, dice: Dice) -> V:
        return self.items[bisect_right(self.cumulative, dice.random() * self.total)]
