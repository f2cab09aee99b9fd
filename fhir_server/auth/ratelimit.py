"""Rate limits on the sign-in form and the token endpoints, against password guessing and floods.

A sliding window of attempts per key (the client's address; for sign-in also the username), kept in
memory by each worker: with N workers the limit a client meets is up to N times the figure here, which
still turns an online guessing attack from thousands of tries a minute into tens.
"""

from __future__ import annotations

import threading
import time
from collections import deque

MAX_KEYS = 100_000  # beyond this the oldest keys are forgotten, so that a flood cannot exhaust memory


class RateLimiter:
    def __init__(self, limit: int, per_seconds: float) -> None:
        self.limit = limit
        self.per_seconds = per_seconds
        self._lock = threading.Lock()
        self._attempts: dict[str, deque[float]] = {}

    def allow(self, *keys: str) -> float | None:
        """Record an attempt under each key; None if allowed, else the seconds until one would be."""
        now = time.monotonic()
        with self._lock:
            wait = None
            for key in keys:
                attempts = self._attempts.setdefault(key, deque())
                while attempts and now - attempts[0] > self.per_seconds:
                    attempts.popleft()
                if len(attempts) >= self.limit:
                    wait = max(wait or 0.0, self.per_seconds - (now - attempts[0]))
            if wait is None:
                for key in keys:
                    self._attempts[key].append(now)
            while len(self._attempts) > MAX_KEYS:
                self._attempts.pop(next(iter(self._attempts)))
            return wait
