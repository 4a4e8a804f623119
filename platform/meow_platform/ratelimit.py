"""Per-tenant request rate limit: a token bucket refilled continuously, one minute of burst.

Kept in memory: the control plane runs as a single replica (the scheduler is the store's only
writer of job states), so one process sees every request.
"""

from __future__ import annotations

import threading
import time


class RateLimiter:
    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, per_minute: int) -> float:
        """Take one request for `key`; returns 0 when allowed, else seconds until one is available."""
        now = self._clock()
        rate = per_minute / 60.0
        with self._lock:
            tokens, last = self._buckets.get(key, (float(per_minute), now))
            tokens = min(float(per_minute), tokens + (now - last) * rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / rate
