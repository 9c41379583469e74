"""What one crawl is asked to do: where it starts, how far it goes, how fast and with which limits."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..rules import RuleOptions
from .urls import normalize_url

USER_AGENT = "alt-text-audit/0.1 (+https://github.com/alt-text)"


@dataclass
class CrawlConfig:
    start_url: str
    max_pages: int = 200  # URLs fetched (pages, errors and non-HTML links alike)
    max_depth: int = 10  # links followed from a seed (the start URL and sitemap pages are depth 0)
    sitemap: str | None = None  # None, "auto" (robots.txt Sitemap: lines and /sitemap.xml) or a sitemap URL
    include: tuple[str, ...] = ()  # regular expressions searched in the URL; when given, one must match
    exclude: tuple[str, ...] = ()  # regular expressions searched in the URL; any match skips it
    concurrency: int = 4
    delay: float = 0.0  # seconds between two requests to one host (robots.txt Crawl-delay may raise it)
    timeout: float = 10.0  # seconds for a whole page (connect, read, body)
    max_bytes: int = 5_000_000  # a page is cut here
    max_sitemap_bytes: int = 50_000_000  # the sitemap protocol's own limit (after gunzip)
    max_sitemaps: int = 100  # sitemap files read, indexes included
    max_crawl_delay: float = 60.0
    save_every: float = 5.0  # seconds between two writes of the state file
    user_agent: str = USER_AGENT
    rule_options: RuleOptions = field(default_factory=RuleOptions)
    render: bool = False  # audit the DOM headless Chromium builds (server.audit.render), not the HTML as fetched
    chromium: str = "/usr/bin/chromium"

    def __post_init__(self) -> None:
        start = normalize_url(self.start_url)
        if start is None:
            raise ValueError(f"{self.start_url!r} is not an http or https URL with a host")
        self.start_url = start
        if self.sitemap not in (None, "auto") and normalize_url(self.sitemap) is None:
            raise ValueError(f"--sitemap must be 'auto' or an http(s) URL, not {self.sitemap!r}")
        self.include, self.exclude = tuple(self.include), tuple(self.exclude)
        self._include = [_compile(p, "--include") for p in self.include]
        self._exclude = [_compile(p, "--exclude") for p in self.exclude]
        for name in ("max_pages", "concurrency", "max_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_depth < 0 or self.delay < 0 or self.timeout <= 0:
            raise ValueError("max_depth and delay must not be negative, and timeout must be positive")

    def wanted(self, url: str) -> bool:
        """--include / --exclude: the start URL is exempt (it is where the links come from)."""
        if url == self.start_url:
            return True
        if self._include and not any(p.search(url) for p in self._include):
            return False
        return not any(p.search(url) for p in self._exclude)


def _compile(pattern: str, option: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ValueError(f"{option} {pattern!r} is not a valid regular expression: {e}") from None
