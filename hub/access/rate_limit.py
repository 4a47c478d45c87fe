"""Token buckets in process memory: per API key (requests), per client address (failed key
attempts), per websocket (subscribe messages).

Each process keeps its own buckets, so with N worker processes a key gets up to N times the
configured rate; put a shared limiter (the reverse proxy, Redis) in front when that matters.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

MAX_BUCKETS = 100_000


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[object, _Bucket] = {}

    def take(self, key: object) -> float:
        """Take one token for ``key``: 0 when allowed, else the seconds until one is free."""
        bucket = self._refilled(key)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def wait(self, key: object) -> float:
        """Like ``take`` without taking: 0 while ``key`` has a token, else the seconds until it
        has one. (Failed key attempts: checked before the lookup, taken only when it fails.)"""
        if key not in self._buckets:
            return 0.0
        bucket = self._refilled(key)
        return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / self.rate

    def _refilled(self, key: object) -> _Bucket:
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._buckets.clear()  # bounded memory; a reset only ever lets more through
            bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), at=now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        return bucket


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
