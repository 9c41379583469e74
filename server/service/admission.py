"""Admission: which requests a worker accepts to wait for the model, and which it refuses at once.

A request whose images are all answered without the model (cached, or invalid) is never counted here and never
refused: it is answered by a request thread in milliseconds. A request that needs the model (an image to fetch, or
uploaded bytes not in the cache) is admitted while

- fewer than ``backlog`` images of admitted requests are unanswered in this worker (the worker's thread pool has one
  thread per admitted request beyond its ``--threads``, so admitted requests can never take the threads that answer
  cached ones; the prepared images waiting in the model's queue stay bounded in memory), and
- the images ahead of it would be answered within ``queue_seconds`` (so an admitted request is answered in time,
  and a stop drains everything it admitted within its graceful timeout).

Otherwise it gets :class:`Overloaded` (HTTP 503 ``overloaded`` with ``Retry-After``: when the backlog should have
shrunk enough). An idle worker admits any request, however large. The wait is estimated as the images ahead times
the model's time per image over its last RECENT_BATCHES batches (their seconds over their images; not the first
batch, which warms the model up). That is the pace of the batches as they come, full or not (images that trickle
in from slow fetches make smaller batches, which cost more per image): a bound on the batches ahead at full size
admitted requests that then waited twice as long. At low load the batches are small and the estimate high, but the
images ahead are few; as the load grows, the admitted images make full batches and the estimate follows them
within a few batches. Until a batch has been measured the time bound does not apply.
"""
from __future__ import annotations

import math
import threading
from collections import deque

RECENT_BATCHES = 8  # the batches whose pace estimates the wait
MAX_RETRY_AFTER = 60


class Overloaded(Exception):
    """The request would wait longer than the worker admits: refused with a 503 and ``retry_after`` seconds."""

    def __init__(self, retry_after: int, reason: str):
        super().__init__(reason)
        self.retry_after, self.reason = retry_after, reason


class Admission:
    def __init__(self, backlog: int, queue_seconds: float):
        self.backlog, self.queue_seconds = backlog, queue_seconds
        self.images = 0  # images of admitted requests, not yet answered
        self.requests = 0
        self.batches = 0
        self._recent: deque[tuple[int, float]] = deque(maxlen=RECENT_BATCHES)  # (images, seconds)
        self._lock = threading.Lock()

    def observe(self, size: int, seconds: float) -> None:
        """One batch of ``size`` images took ``seconds`` (the batching worker's callback)."""
        with self._lock:
            self.batches += 1
            if self.batches > 1 and size > 0 and seconds > 0:  # the first batch warms the model up: not a measure
                self._recent.append((size, seconds))

    @property
    def seconds_per_image(self) -> float | None:
        """The model's recent time per image, or None before a batch is measured."""
        recent = list(self._recent)
        return sum(s for _, s in recent) / sum(n for n, _ in recent) if recent else None

    def wait_seconds(self, images: int) -> float | None:
        """The estimated time the model takes to answer ``images`` images, or None before a batch is measured."""
        per_image = self.seconds_per_image
        return images * per_image if per_image is not None else None

    def admit(self, images: int) -> None:
        """Count a request of ``images`` images that need the model, or raise Overloaded. Pair with ``release``."""
        with self._lock:
            if self.images:  # an idle worker takes any request
                wait = self.wait_seconds(self.images + images)
                over = self.images + images - self.backlog
                if over > 0:
                    raise Overloaded(self._retry_after(self.wait_seconds(over)),
                                     f"{self.images} images are waiting for the model (at most {self.backlog})")
                if wait is not None and wait > self.queue_seconds:
                    raise Overloaded(self._retry_after(wait - self.queue_seconds),
                                     f"the images ahead would take {wait:.0f} s (at most {self.queue_seconds:.0f} s)")
            self.images += images
            self.requests += 1

    def release(self, images: int) -> None:
        with self._lock:
            self.images -= images
            self.requests -= 1

    @staticmethod
    def _retry_after(seconds: float | None) -> int:
        """Whole seconds until the backlog should be under the bound again, from 1 to MAX_RETRY_AFTER."""
        return 1 if seconds is None else max(1, min(MAX_RETRY_AFTER, math.ceil(seconds)))
