"""Per-client rate limit: a token bucket per API key (or address), refilled continuously.

In memory and per process: with N gunicorn workers a client gets up to N times the limit. That bounds abuse of the
fetcher well enough; a shared limit would live in Redis.
"""
from __future__ import annotations

import threading
import time


class RateLimiter:
    def __init__(self, per_minute: int, max_clients: int = 100_000):
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, last refill)
        self._lock = threading.Lock()

    def take(self, client: str, now: float | None = None) -> float:
        """0 when the request may go ahead, else the seconds to wait before retrying."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(client, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                wait = 0.0
            else:
                self._buckets[client] = (tokens, now)
                wait = (1 - tokens) / self.rate
            if len(self._buckets) > self.max_clients:  # forget clients idle for a minute: their buckets are full
                self._buckets = {c: b for c, b in self._buckets.items() if now - b[1] < 60}
            return wait
