"""HTTP access to the audited site: its pages through the fetch layer (:mod:`server.netsafe`) under the
user's-own-site policy, its robots.txt, and the politeness delay between two requests to one host.

robots.txt is obeyed with Google's semantics (protego, Scrapy's parser: ``*`` and ``$`` wildcards, the longest
matching rule wins, ``Allow`` beats ``Disallow`` on a tie; 401/403 means "disallow everything", another 4xx means
"no rules", a 5xx or network failure is recorded and treated as "no rules", since this is the owner's own audit),
its ``Crawl-delay`` (fractions too) is honoured (capped at ``max_crawl_delay``) together with ``delay``, per host.
"""
from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Callable

from protego import Protego

from server.netsafe import OWN_SITE, FetchError, Fetcher, FetchLimits, Response

from .config import CrawlConfig
from .urls import origin

HTML_TYPES = ("text/html", "application/xhtml+xml")
PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"


class FetchFailure(Exception):
    """A fetch that produced no usable response: ``kind`` is a page status ("timeout", "error")."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind, self.message = kind, message

    @classmethod
    def of(cls, e: FetchError, timeout: float) -> "FetchFailure":
        """The fetch layer's error as a page status and what the report says of it."""
        kind, said = _FAILURES.get(e.code, ("error", None))
        return cls(kind, said.format(timeout=timeout) if said else f"the page could not be fetched ({e.message})")


_FAILURES = {  # FetchError code -> (page status, message); the timeouts say the --timeout they were given
    "deadline_exceeded": ("timeout", "the page took longer than {timeout:g} s to arrive"),
    "read_timeout": ("timeout", "the server went silent for more than {timeout:g} s"),
    "connect_timeout": ("timeout", "no answer within {timeout:g} s"),
    "connect_failed": ("error", "connection refused (or the host is unreachable)"),
    "dns_failure": ("error", "the host name could not be resolved"),
    "tls_error": ("error", "the TLS handshake failed or the certificate could not be verified"),
    "upstream_error": ("error", "the server sent a broken HTTP response"),
    "unsupported_encoding": ("error", "the server used a Content-Encoding other than gzip or deflate"),
    "bad_redirect": ("error", "a redirect without a usable Location"),
    "too_many_redirects": ("error", "too many redirects"),
}


def is_html(response: Response) -> bool:
    """HTML by its Content-Type, or without one by its first bytes, as browsers sniff."""
    if response.content_type:
        return response.content_type in HTML_TYPES
    head = response.body[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


_ALLOW_ALL = Protego.parse("")
_DISALLOW_ALL = Protego.parse("User-agent: *\nDisallow: /\n")


class Site:
    """HTTP access to the audited site: the fetch layer under the user's-own-site policy with the audit's
    User-Agent (connections kept alive), robots.txt per origin, and the politeness delay per host."""

    def __init__(self, config: CrawlConfig, site_errors: list[dict] | None = None):
        self.config = config
        self.site_errors = site_errors if site_errors is not None else []
        self._robots: dict[str, Protego] = {}
        self._robots_lock = threading.Lock()
        self._next_slot: dict[str, float] = {}
        self._slot_lock = threading.Lock()
        self.fetcher = Fetcher(policy=OWN_SITE, user_agent=config.user_agent)
        self._base_limits = FetchLimits()
        self._limits_by: dict[tuple[int, float], FetchLimits] = {}

    # -- robots.txt ----------------------------------------------------------------------------------------------

    def robots(self, site_origin: str) -> Protego:
        with self._robots_lock:  # held while fetching: every thread wants the same answer, fetched once
            rp = self._robots.get(site_origin)
            if rp is None:
                rp = self._robots[site_origin] = self._read_robots(site_origin)
            return rp

    def _read_robots(self, site_origin: str) -> Protego:
        url = site_origin + "/robots.txt"
        try:
            r = self.get(url, max_bytes=500_000, follow_redirects=True)  # Google reads the first 500 KiB
        except FetchFailure as e:
            self.site_errors.append({"url": url, "kind": "robots", "message": f"{e.message}; crawling as if it "
                                                                              "allowed everything"})
            return _ALLOW_ALL
        if r.status in (401, 403):
            return _DISALLOW_ALL
        if 400 <= r.status < 500:
            return _ALLOW_ALL
        if r.status >= 300:
            self.site_errors.append({"url": url, "kind": "robots", "message": f"HTTP {r.status}; crawling as if "
                                                                              "it allowed everything"})
            return _ALLOW_ALL
        try:
            return Protego.parse(r.body.decode(r.charset or "utf-8", errors="replace"))
        except Exception as e:  # noqa: BLE001 - a robots.txt that breaks the parser must not end the audit
            self.site_errors.append({"url": url, "kind": "robots", "message": f"could not be parsed "
                                                                              f"({type(e).__name__}); crawling as "
                                                                              "if it allowed everything"})
            return _ALLOW_ALL

    def allowed(self, url: str) -> bool:
        return self.robots(origin(url)).can_fetch(url, self.config.user_agent)

    def crawl_delay(self, url: str) -> float:
        robots_delay = self.robots(origin(url)).crawl_delay(self.config.user_agent)
        try:
            robots_delay = float(robots_delay or 0)
        except (TypeError, ValueError):
            robots_delay = 0.0
        return max(self.config.delay, min(robots_delay, self.config.max_crawl_delay))

    def _wait_turn(self, url: str) -> None:
        """Space requests to one host by the politeness delay (threads queue up for their slot)."""
        if url.endswith("/robots.txt"):
            delay = self.config.delay
        else:
            delay = self.crawl_delay(url)
        if delay <= 0:
            return
        key = origin(url)
        with self._slot_lock:
            now = time.monotonic()
            slot = max(now, self._next_slot.get(key, now))
            self._next_slot[key] = slot + delay
        time.sleep(slot - now)

    # -- fetching ------------------------------------------------------------------------------------------------

    def get(self, url: str, max_bytes: int, follow_redirects: bool = False,
            read_body: Callable[[Response], bool] = lambda r: True, timeout: float | None = None,
            accept: str = PAGE_ACCEPT) -> Response:
        """GET under the deadline and byte cap, after this host's politeness delay. The body is read only when
        ``read_body(response)`` says so (a crawler has no use for a PDF's bytes), or when there is no
        Content-Type to tell; a body over the cap is cut and marked ``truncated``."""
        self._wait_turn(url)
        timeout = timeout or self.config.timeout
        try:
            return self.fetcher.get(url, limits=self._limits(max_bytes, timeout), follow=follow_redirects,
                                    read_body=lambda r: not r.content_type or read_body(r), truncate=True,
                                    accept=accept)
        except FetchError as e:
            raise FetchFailure.of(e, timeout) from None

    def _limits(self, max_bytes: int, timeout: float) -> FetchLimits:
        key = (max_bytes, timeout)
        limits = self._limits_by.get(key)
        if limits is None:
            limits = self._limits_by[key] = replace(self._base_limits, max_bytes=max_bytes, connect_timeout=timeout,
                                                    read_timeout=timeout, total_timeout=timeout)
        return limits

    def close(self) -> None:
        """Close the connections kept alive (a later fetch opens new ones)."""
        self.fetcher.close()
