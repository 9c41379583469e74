"""What a crawl knows: the pages it fetched (and what happened to each), its frontier, what it saw and skipped."""
from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .atomic_file import write_atomic
from .findings import FindingStore
from .pixels import PixelStore

MAX_SKIPPED_URLS = 1000  # skipped URLs listed one by one in the report; the counts are always complete

# Page statuses: what happened to one fetched URL. The ones in ERROR_STATUSES are crawl errors in the report.
ERROR_STATUSES = frozenset({"http_error", "timeout", "error", "truncated", "redirect_loop", "too_many_redirects",
                            "over_budget", "render_error"})
# Pages whose images were checked: truncated and over_budget in part, render_error (--render) in the HTML as fetched.
AUDITED_STATUSES = ("ok", "truncated", "over_budget", "render_error")
PAGE_STATUSES = ("ok", "not_html", "duplicate", "off_site_redirect", "robots_disallowed", *sorted(ERROR_STATUSES))
SKIP_REASONS = ("off_site", "excluded", "robots", "depth_limit")


@dataclass
class Page:
    """One fetched URL. ``url`` is what was requested; ``final_url`` is set when redirects led elsewhere."""
    url: str
    depth: int
    referrer: str | None
    status: str = "ok"
    http_status: int | None = None
    final_url: str | None = None
    content_type: str | None = None
    bytes: int = 0
    images: int = 0
    findings: int = 0
    elapsed_ms: float = 0.0
    error: str | None = None


@dataclass
class CrawlState:
    """Everything a crawl knows; JSON-serialisable so that an interrupted crawl can be resumed."""
    start_url: str
    origins: list[str]
    seeded: bool = False  # sitemaps read and the start URL queued
    done: bool = False  # the frontier is exhausted or the page limit reached
    frontier: deque = field(default_factory=deque)  # [url, depth, referrer]
    seen: set = field(default_factory=set)  # every URL ever queued or skipped
    checked: set = field(default_factory=set)  # final URLs of the pages already audited
    pages: list[Page] = field(default_factory=list)
    findings: FindingStore = field(default_factory=FindingStore)  # asdict(Finding), in crawl order, on disk
    # asdict(ImageContext) of every image to judge (RuleOptions.judge_images: suggestions on), in crawl order
    image_contexts: FindingStore = field(default_factory=FindingStore)
    # The pixels of the graphics those findings and contexts name by reference (suggestions on), beside the journal
    graphics: PixelStore = field(default_factory=PixelStore)
    skipped: dict = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))
    skipped_urls: list[dict] = field(default_factory=list)  # {url, reason, referrer}, the first MAX_SKIPPED_URLS
    site_errors: list[dict] = field(default_factory=list)  # robots.txt and sitemap problems: {url, kind, message}
    started_at: float = field(default_factory=time.time)
    limit_reached: bool = False
    # One document, audited once: the digest of each audited page's body -> the URL it was audited under, so that
    # / and /index.html (or any two URLs serving the same bytes) are one page in the report.
    documents: dict = field(default_factory=dict)

    @property
    def images(self) -> int:
        return sum(p.images for p in self.pages)

    def save(self, path: str | Path) -> None:
        """Write the whole state as a fresh journal (header and one snapshot line), atomically."""
        from .journal import Journal

        write_atomic(path, itertools.chain([Journal.header(self)], Journal.snapshot_lines(self)))

    @classmethod
    def load(cls, path: str | Path) -> "CrawlState":
        """Replay a journal. Raises OSError (missing, unreadable) or ValueError (not a state file)."""
        from .journal import Journal

        return Journal.load(path)
