"""The one redirect rule, for the service's image fetches, the CLI and every fetch of the audit (pages, robots.txt,
sitemaps, images): which statuses redirect, where a ``Location`` points, and how many hops are followed
(:data:`server.netsafe.limits.MAX_REDIRECTS` unless the caller's ``FetchLimits`` say otherwise).

Each hop is a new fetch of a new URL, checked like the first (its policy, its host, its address); callers that
judge hops by more than that (the crawler: loops, other sites, robots.txt) follow them one at a time with
:class:`Redirects` and their own checks in between.
"""
from __future__ import annotations

import urllib.parse

from .errors import FetchError
from .limits import MAX_REDIRECTS

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class Redirects:
    """The hops of one fetch: ``chain`` is the URL asked for, then every target followed, in order."""

    def __init__(self, url: str, limit: int = MAX_REDIRECTS) -> None:
        self.chain = [url]
        self.limit = limit

    @property
    def current(self) -> str:
        return self.chain[-1]

    def location(self, status: int, location: str | None) -> str | None:
        """Where a response points: its ``Location`` resolved against the current URL; None for a response that
        is not a redirect, a missing ``Location`` or one that cannot be resolved."""
        location = (location or "").strip()
        if status not in REDIRECT_STATUSES or not location:
            return None
        try:
            return urllib.parse.urljoin(self.current, location)
        except ValueError:
            return None

    def follow(self, url: str) -> None:
        """Count a hop to ``url``; past the limit, ``too_many_redirects``."""
        self.chain.append(url)
        if self.exhausted:
            raise self.too_many()

    @property
    def exhausted(self) -> bool:
        return len(self.chain) > self.limit + 1

    def too_many(self) -> FetchError:
        return FetchError("too_many_redirects", f"more than {self.limit} redirects", 502)
