"""Crawl one site for the audit: which pages to fetch, in what order, and what each fetch found.

The crawl is breadth-first from the start URL (plus, with ``sitemap``, every page the site's sitemaps list), stays
on the start URL's origin (and the origin it redirects to, e.g. http -> https), and stops at ``max_pages`` fetched
URLs or ``max_depth`` links from a seed. Each HTML page is checked with :func:`server.audit.rules.check_page` on a
worker thread; results are *recorded* in the order the URLs left the frontier, so a crawl with 8 threads visits
the same pages, in the same order, as one with 1 thread, and a resumed crawl ends where an uninterrupted one would.

Network policy, and why it differs from :mod:`server.netsafe.fetch`: the service refuses private addresses because a
stranger chooses its URLs. An audit is started by the site's owner against their own site, which is often on an
intranet, a staging host or localhost, so pages *are* fetched from private and loopback addresses: the URL on the
command line is the permission. What a page links to cannot widen that: other origins are never crawled. Images
for suggestions are a separate question, answered in :mod:`server.audit.suggest`.

Politeness: robots.txt is obeyed with Google's semantics (protego, Scrapy's parser: ``*`` and ``$`` wildcards, the
longest matching rule wins, ``Allow`` beats ``Disallow`` on a tie; 401/403 means "disallow everything", another
4xx means "no rules", a 5xx or network failure is recorded and treated as "no rules", since this is the owner's
own audit), its ``Crawl-delay`` (fractions too) is honoured (capped at ``max_crawl_delay``) together with ``delay``,
per host.
Every fetch has a connect/read timeout, a whole-page deadline and a byte cap: a page over the cap is cut there,
checked as far as it got, and reported as truncated. Rule checking has its own budget per page (elements and
seconds, :class:`RuleOptions`): a page over it is checked as far as the budget went and reported as over_budget.

Determinism: what is recorded for a URL depends only on the pages recorded before it, never on which fetches
happened to finish first, so ``concurrency`` changes the speed of a crawl and nothing in its records (elapsed times
aside).

Interruption: the crawl state is an append-only journal (:class:`Journal`, Scrapy's JOBDIR idea): a header line,
then one JSON line per recorded page with what recording it changed (the page, its findings, the URLs it queued,
marked seen or skipped). Saving therefore costs O(new pages), not O(pages); each line is written as soon as its page
is recorded (and fsync'ed every ``save_every`` seconds), so Ctrl-C, a crash or even SIGKILL loses at most the pages
that were in flight, and :meth:`Crawler.run` on the replayed state carries on without refetching the rest. A line
torn by a kill is dropped on load. The frontier is not rewritten either: it is replayed as the URLs queued minus the
URLs taken from it.

Memory: the findings (about five per page) are not kept in a list but in a :class:`FindingStore`, JSON lines in a
temporary file, which the report writers and the suggestions read back one finding at a time; what a crawl holds
per page is its page record and URLs (about half a kilobyte), not its findings.
"""
from __future__ import annotations

import codecs
import hashlib
import itertools
import json
import logging
import os
import queue
import re
import signal
import string
import tempfile
import threading
import time
import zlib
from collections import deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence
from urllib.parse import quote, urljoin, urlsplit

import idna
import requests
from bs4 import BeautifulSoup
from lxml import etree
from protego import Protego

from .rules import Finding, RuleOptions, audit_page, parse

log = logging.getLogger(__name__)

USER_AGENT = "alt-text-audit/0.1 (+https://github.com/alt-text)"
STATE_FORMAT = "alt-text-audit-state/1"  # the whole state in one JSON document (read, never written)
JOURNAL_FORMAT = "alt-text-audit-state/2"  # a journal: header line + one line per change set
HTML_TYPES = ("text/html", "application/xhtml+xml")
REDIRECTS = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_SKIPPED_URLS = 1000  # skipped URLs listed one by one in the report; the counts are always complete

# Page statuses: what happened to one fetched URL. The ones in ERROR_STATUSES are crawl errors in the report.
ERROR_STATUSES = frozenset({"http_error", "timeout", "error", "truncated", "redirect_loop", "too_many_redirects",
                            "over_budget", "render_error"})
# Pages whose images were checked: truncated and over_budget in part, render_error (--render) in the HTML as fetched.
AUDITED_STATUSES = ("ok", "truncated", "over_budget", "render_error")
PAGE_STATUSES = ("ok", "not_html", "duplicate", "off_site_redirect", "robots_disallowed", *sorted(ERROR_STATUSES))
SKIP_REASONS = ("off_site", "excluded", "robots", "depth_limit")


# ---------------------------------------------------------------------------------------------------------------
# URLs


_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_PATH_SAFE = "/:@!$&'()*+,;=%"
_QUERY_SAFE = _PATH_SAFE + "?"


def _normalize_escapes(text: str, safe: str) -> str:
    """One spelling per URL: escapes of unreserved characters decoded, other escapes upper-cased, and characters
    that must be escaped (spaces, non-ASCII) escaped as UTF-8, as browsers do."""
    text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)) if chr(int(m.group(1), 16)) in _UNRESERVED
                       else "%" + m.group(1).upper(), text)
    return quote(text, safe=safe)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4 for an absolute path: /a/./b/../c -> /a/c."""
    segments = path.split("/")
    out: list[str] = []
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg in (".", ".."):
            if seg == ".." and len(out) > 1:
                out.pop()
            if last:
                out.append("")
            continue
        out.append(seg)
    result = "/".join(out)
    return result if result.startswith("/") else "/" + result


def _host(hostname: str) -> str | None:
    host = hostname.rstrip(".")
    if not host:
        return None
    if ":" in host:  # IPv6 literal (urlsplit already dropped the brackets)
        return f"[{host}]"
    if host.isascii():
        return host.lower()
    try:  # UTS-46 non-transitional, as browsers: faß.de is xn--fa-hia.de, not fass.de
        return idna.encode(host, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return None


def normalize_url(url: str, base: str | None = None) -> str | None:
    """The one spelling of an http(s) URL used for de-duplication, or None for anything else.

    Resolved against ``base``; scheme and host lower-cased (host IDNA-encoded by UTS-46, as browsers do); default port, fragment and empty
    query dropped; dot segments resolved; percent-escapes normalised; query parameters sorted (their order almost
    never matters, and sorting makes ``?a=1&b=2`` and ``?b=2&a=1`` one page). URLs with user-info are refused so
    that no credentials end up in a report.
    """
    if not isinstance(url, str):
        return None
    url = re.sub(r"[\t\n\r]", "", url.strip())  # what browsers strip from href values
    try:
        if base:
            url = urljoin(base, url)
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or parts.username is not None or parts.password is not None:
        return None
    host = _host(parts.hostname or "")
    if host is None:
        return None
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = _remove_dot_segments(_normalize_escapes(parts.path, _PATH_SAFE))
    pieces = sorted(_normalize_escapes(p, _QUERY_SAFE) for p in parts.query.split("&") if p)
    query = "?" + "&".join(pieces) if pieces else ""
    return f"{scheme}://{netloc}{path}{query}"


def origin(url: str) -> str:
    """scheme://host[:port] of a normalised URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# ---------------------------------------------------------------------------------------------------------------
# Configuration and state


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
    max_redirects: int = 10
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


class StreamedSequence(Sequence):
    """A read-only sequence made from its iterator (the findings on disk, a report's findings streamed from them):
    ``len`` is known, indexing and slices scan, ``==`` compares item by item with another one or a list."""

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            return list(itertools.islice(self, start, stop, step)) if step > 0 else list(self)[key]
        index = key + len(self) if key < 0 else key
        if not 0 <= index < len(self):
            raise IndexError("index out of range")
        return next(itertools.islice(self, index, None))

    def __eq__(self, other) -> bool:
        if isinstance(other, (StreamedSequence, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None


class FindingStore(StreamedSequence):
    """The crawl's findings (``asdict(Finding)`` dicts, in crawl order), kept on disk instead of in memory: JSON
    lines in an anonymous temporary file (deleted when the store is closed or collected; the durable copy is the
    journal's). A big crawl holds about five findings per page, so a list of them grew without bound; the store
    holds two numbers. It reads like a list (``len``, iteration, indexing, slices, ``==``): iterating streams the
    file in blocks, one finding at a time, and sees the findings stored when the iteration began. Appended to by
    one thread (the crawl's recording thread); reading from others is safe."""

    _BLOCK = 1 << 18

    def __init__(self, items: Iterable[dict] = (), dir: str | Path | None = None):
        self._dir = dir
        self._file = None  # opened on the first finding: most states in tests never hold one
        self._len = self._size = 0
        self._last = (0, 0)  # (index, byte offset) where the last extend began: the journal reads from there
        self._lock = threading.Lock()
        self.extend(items)

    def extend(self, items: Iterable[dict]) -> None:
        # ensure_ascii: a lone surrogate from a page survives the round trip exactly, as it did in a list
        data = b"".join(json.dumps(f).encode("ascii") + b"\n" for f in items)
        if not data:
            return
        with self._lock:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="alt-text-findings-", suffix=".jsonl", dir=self._dir)
            self._file.seek(self._size)
            self._file.write(data)
            self._last = (self._len, self._size)
            self._len += data.count(b"\n")  # json.dumps escapes newlines in strings: one line per finding
            self._size += len(data)

    def append(self, item: dict) -> None:
        self.extend((item,))

    def _iter_from(self, index: int, offset: int) -> Iterator[dict]:
        end, buf, pos = self._size, b"", offset
        while pos < end:
            with self._lock:
                self._file.seek(pos)
                block = self._file.read(min(self._BLOCK, end - pos))
            if not block:
                raise OSError("the findings file was cut short")
            pos += len(block)
            *lines, buf = (buf + block).split(b"\n")
            for line in lines:
                yield json.loads(line)

    def __iter__(self) -> Iterator[dict]:
        return self._iter_from(0, 0)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, key):
        if isinstance(key, slice) and key.step in (None, 1):
            start, stop, _ = key.indices(self._len)
            if start >= self._last[0]:  # the journal's "what the last page added": read from there
                return list(itertools.islice(self._iter_from(*self._last), start - self._last[0],
                                             stop - self._last[0]))
        return super().__getitem__(key)

    def __repr__(self) -> str:
        return f"<FindingStore of {self._len} finding(s), {self._size:,} bytes on disk>"

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            self._len = self._size = 0
            self._last = (0, 0)


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

    def to_dict(self) -> dict:
        return {
            "format": STATE_FORMAT, "start_url": self.start_url, "origins": self.origins, "seeded": self.seeded,
            "done": self.done, "frontier": [list(item) for item in self.frontier], "seen": sorted(self.seen),
            "checked": sorted(self.checked), "pages": [asdict(p) for p in self.pages], "findings": list(self.findings),
            "skipped": self.skipped, "skipped_urls": self.skipped_urls, "site_errors": self.site_errors,
            "started_at": self.started_at, "limit_reached": self.limit_reached, "documents": self.documents,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "CrawlState":
        if not isinstance(d, dict) or d.get("format") != STATE_FORMAT:
            raise ValueError("not an alt-text audit state file (or one from another version)")
        try:
            return cls(
                start_url=d["start_url"], origins=list(d["origins"]), seeded=bool(d["seeded"]), done=bool(d["done"]),
                frontier=deque(tuple(item) for item in d["frontier"]), seen=set(d["seen"]),
                checked=set(d["checked"]), pages=[Page(**p) for p in d["pages"]],
                findings=FindingStore(asdict(Finding(**f)) for f in d["findings"]),
                skipped={**dict.fromkeys(SKIP_REASONS, 0), **d["skipped"]}, skipped_urls=list(d["skipped_urls"]),
                site_errors=list(d["site_errors"]), started_at=float(d["started_at"]),
                limit_reached=bool(d.get("limit_reached", False)), documents=dict(d.get("documents") or {}))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"the state file is incomplete or damaged ({e})") from None

    def save(self, path: str | Path) -> None:
        """Write the whole state as a fresh journal (header and one snapshot line), atomically."""
        write_atomic(path, itertools.chain([Journal.header(self)], Journal.snapshot_lines(self)))

    @classmethod
    def load(cls, path: str | Path) -> "CrawlState":
        """Replay a journal (or read a whole-state document of format 1). Raises OSError (missing, unreadable) or
        ValueError (not a state file)."""
        return Journal.load(path)


class Journal:
    """The append-only crawl state on disk: a header line, then one JSON object per line, each a change set.

    Keys of a change set (all optional): ``pages`` and ``findings`` (appended), ``seen`` and ``checked`` (URLs
    added to those sets), ``queued`` ([url, depth, referrer] appended to the frontier), ``taken`` (URLs taken from
    the frontier without a page record: already audited through a redirect), ``skipped`` (the counts, whole),
    ``skipped_urls``, ``site_errors`` and ``origins`` (appended), ``seeded``, ``done``, ``limit_reached``. The
    frontier after replay is the URLs queued, in order, minus the pages recorded and the URLs taken: exactly what the
    crawl held in memory, with the pages in flight back at its front. The crawler reports its changes through
    :meth:`see`, :meth:`check`, :meth:`queue` and :meth:`take`; the append-only lists are followed by length."""

    def __init__(self, path: str | Path | None, state: CrawlState):
        self.path = Path(path) if path is not None else None
        self.state = state
        self._seen: list[str] = []
        self._checked: list[str] = []
        self._queued: list[list] = []
        self._taken: list[str] = []
        self._documents: dict[str, str] = {}
        self._file = None
        self._mark()

    def _mark(self) -> None:
        st = self.state
        self._n = {"pages": len(st.pages), "findings": len(st.findings), "skipped_urls": len(st.skipped_urls),
                   "site_errors": len(st.site_errors), "origins": len(st.origins)}
        self._flags = (st.seeded, st.done, st.limit_reached)
        self._skipped = dict(st.skipped)

    # -- writing -------------------------------------------------------------------------------------------------

    @staticmethod
    def header(state: CrawlState) -> str:
        return json.dumps({"format": JOURNAL_FORMAT, "start_url": state.start_url,
                           "started_at": state.started_at}, ensure_ascii=False) + "\n"

    @staticmethod
    def snapshot_lines(state: CrawlState, chunk: int = 1000) -> Iterator[str]:
        """The whole state as change sets (from an empty state): one line with everything but the findings, then
        the findings ``chunk`` to a line, streamed from the store (never one line, or one string, for them all)."""
        pages = {p.url for p in state.pages}
        yield json.dumps({
            "pages": [asdict(p) for p in state.pages], "seen": sorted(state.seen), "checked": sorted(state.checked),
            # Recorded URLs are taken out on replay: queue the frontier after them so that none is lost.
            "queued": [list(i) for i in state.frontier if i[0] not in pages],
            "skipped": state.skipped, "skipped_urls": state.skipped_urls, "site_errors": state.site_errors,
            "origins": state.origins, "seeded": state.seeded, "done": state.done,
            "limit_reached": state.limit_reached, "documents": state.documents}, ensure_ascii=False) + "\n"
        findings = iter(state.findings)
        while batch := list(itertools.islice(findings, chunk)):
            yield json.dumps({"findings": batch}, ensure_ascii=False) + "\n"

    def open(self) -> None:
        """Start writing: append to the journal the state was replayed from, else start a fresh one."""
        if self.path is None:
            return
        st = self.state
        if getattr(st, "_journal", None) == (str(self.path.resolve()), self.path.stat().st_mtime_ns
                                              if self.path.exists() else None):
            self._file = open(self.path, "r+b")
            self._file.truncate(st._journal_end)  # a line torn by a kill goes
            self._file.seek(0, os.SEEK_END)
        else:
            write_atomic(self.path, itertools.chain([self.header(st)], self.snapshot_lines(st)))
            self._file = open(self.path, "ab")
        self._mark()
        self._flags = None  # the flags as this run starts (Crawler resets done) go in the first line
        self._last_sync = time.monotonic()

    def see(self, url: str) -> None:
        self._seen.append(url)

    def check(self, url: str) -> None:
        self._checked.append(url)

    def queue(self, item: tuple) -> None:
        self._queued.append(list(item))

    def take(self, url: str) -> None:
        self._taken.append(url)

    def document(self, digest: str, url: str) -> None:
        self._documents[digest] = url

    def flush(self, sync_every: float | None = None, force_sync: bool = False) -> None:
        """Append what changed since the last flush as one line (nothing when nothing changed); fsync when
        ``sync_every`` seconds have passed or ``force_sync``. A write reaches the OS at once: only a power cut can
        lose a flushed line, never a kill of the process."""
        st = self.state
        change: dict = {}
        for key in ("pages", "findings", "skipped_urls", "site_errors", "origins"):
            items = getattr(st, key)
            n = len(items)
            if n > self._n[key]:
                new = items[self._n[key]:n]
                change[key] = [asdict(p) for p in new] if key == "pages" else list(new)
                self._n[key] = n
        for key, delta in (("seen", self._seen), ("checked", self._checked), ("queued", self._queued),
                           ("taken", self._taken)):
            if delta:
                change[key] = list(delta)
                delta.clear()
        if self._documents:
            change["documents"] = dict(self._documents)
            self._documents.clear()
        if st.skipped != self._skipped:
            change["skipped"] = dict(st.skipped)
            self._skipped = dict(st.skipped)
        flags = (st.seeded, st.done, st.limit_reached)
        if flags != self._flags:
            change.update(seeded=st.seeded, done=st.done, limit_reached=st.limit_reached)
            self._flags = flags
        if self._file is None:
            return
        if change:
            self._file.write(json.dumps(change, ensure_ascii=False).encode("utf-8", "replace") + b"\n")
            self._file.flush()
        if force_sync or (sync_every is not None and time.monotonic() - self._last_sync >= sync_every):
            os.fsync(self._file.fileno())
            self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._file is not None:
            self.flush(force_sync=True)
            self._file.close()
            self._file = None

    # -- reading -------------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> CrawlState:
        path = Path(path)
        with open(path, "rb") as f:
            first = f.readline()
            try:
                head = json.loads(first)
            except ValueError as e:
                raise ValueError(f"the state file is not valid JSON ({e})") from None
            if isinstance(head, dict) and head.get("format") == STATE_FORMAT:
                try:
                    return CrawlState.from_dict(json.loads(first + f.read()))
                except ValueError as e:
                    raise ValueError(f"the state file is not valid JSON ({e})") from None
            if not isinstance(head, dict) or head.get("format") != JOURNAL_FORMAT:
                raise ValueError("not an alt-text audit state file (or one from another version)")
            try:
                st = CrawlState(start_url=head["start_url"], origins=[], started_at=float(head["started_at"]),
                                findings=FindingStore(dir=path.parent))
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"the state file is incomplete or damaged ({e})") from None
            frontier: dict[str, tuple] = {}
            end, number = len(first), 1
            for line in f:
                number += 1
                if not line.endswith(b"\n"):
                    break  # torn by a kill while it was written: that page was in flight
                try:
                    cls._apply(st, json.loads(line), frontier)
                except (KeyError, TypeError, ValueError, AttributeError) as e:
                    raise ValueError(f"the state file is damaged at line {number} ({e})") from None
                end += len(line)
        st.frontier = deque(frontier.values())
        st._journal = (str(path.resolve()), path.stat().st_mtime_ns)
        st._journal_end = end
        return st

    @staticmethod
    def _apply(st: CrawlState, change: dict, frontier: dict[str, tuple]) -> None:
        pages = [Page(**p) for p in change.get("pages", ())]
        st.pages.extend(pages)
        st.findings.extend(asdict(Finding(**f)) for f in change.get("findings", ()))
        st.seen.update(change.get("seen", ()))
        st.checked.update(change.get("checked", ()))
        for url, depth, referrer in change.get("queued", ()):
            frontier[url] = (url, int(depth), referrer)
        for p in pages:
            frontier.pop(p.url, None)
        for url in change.get("taken", ()):
            frontier.pop(url, None)
        if "skipped" in change:
            st.skipped = {**dict.fromkeys(SKIP_REASONS, 0), **change["skipped"]}
        st.skipped_urls.extend(change.get("skipped_urls", ()))
        st.site_errors.extend(change.get("site_errors", ()))
        st.origins.extend(change.get("origins", ()))
        st.documents.update(change.get("documents") or {})
        for flag in ("seeded", "done", "limit_reached"):
            if flag in change:
                setattr(st, flag, bool(change[flag]))


def _file_mode(path: Path) -> int:
    """The mode a new file gets from open(): 0666 less the umask; an existing file keeps its own."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        pass
    with _umask_lock:
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


_umask_lock = threading.Lock()


def write_atomic(path: str | Path, text: str | Iterable[str]) -> None:
    """Write a file so that readers (and a crash) see the old or the new content, never half of one. ``text`` is
    a string or an iterable of strings (a report streamed piece by piece)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _file_mode(path))  # mkstemp's 0600 would make a report only its writer can read
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace", newline="") as f:
            for piece in (text,) if isinstance(text, str) else text:
                f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ---------------------------------------------------------------------------------------------------------------
# HTTP access to the site


class FetchFailure(Exception):
    """A fetch that produced no usable response: ``kind`` is a page status ("timeout", "error")."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind, self.message = kind, message


@dataclass
class Response:
    url: str
    status: int
    headers: Mapping[str, str]  # case-insensitive (requests' CaseInsensitiveDict)
    content_type: str  # media type, lower-case, no parameters ("" when absent)
    charset: str | None
    body: bytes = b""
    truncated: bool = False

    @property
    def is_html(self) -> bool:
        if self.content_type:
            return self.content_type in HTML_TYPES
        head = self.body[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()  # no Content-Type: sniff, as browsers do
        return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def _content_type(header: str | None) -> tuple[str, str | None]:
    media, _, params = (header or "").partition(";")
    match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", params, re.I)
    charset = match.group(1) if match else None
    if charset:
        try:
            codecs.lookup(charset)
        except LookupError:
            charset = None
    return media.strip().lower(), charset


def _describe(e: Exception) -> str:
    """requests' messages repeat the pool, URL and errno; keep the part a person can act on."""
    text = str(e)
    for needle, said in (("Connection refused", "connection refused"),
                         ("NameResolution", "the host name could not be resolved"),
                         ("Name or service not known", "the host name could not be resolved"),
                         ("CERTIFICATE_VERIFY_FAILED", "the TLS certificate could not be verified"),
                         ("Connection reset", "the connection was reset"),
                         ("RemoteDisconnected", "the server closed the connection without answering")):
        if needle in text:
            return said
    if isinstance(e, requests.exceptions.SSLError):
        return "TLS handshake failed"
    if isinstance(e, requests.exceptions.TooManyRedirects):
        return "too many redirects"
    return f"the request failed ({type(e).__name__})"


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    return host == "localhost" or host.endswith(".localhost") or host.startswith("127.") or host == "::1"


_ALLOW_ALL = Protego.parse("")
_DISALLOW_ALL = Protego.parse("User-agent: *\nDisallow: /\n")


class Site:
    """HTTP access to the audited site: one requests session per thread (sessions are not thread-safe) with the
    audit's User-Agent, robots.txt per origin, and the politeness delay per host."""

    def __init__(self, config: CrawlConfig, site_errors: list[dict] | None = None):
        self.config = config
        self.site_errors = site_errors if site_errors is not None else []
        self._local = threading.local()
        self._robots: dict[str, Protego] = {}
        self._robots_lock = threading.Lock()
        self._next_slot: dict[str, float] = {}
        self._slot_lock = threading.Lock()
        # Proxies from the environment are honoured (intranet users may need them), except for a loopback site,
        # which a proxy could not reach anyway.
        self._trust_env = not _is_loopback(urlsplit(config.start_url).hostname or "")

    def session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.headers["User-Agent"] = self.config.user_agent
            s.trust_env = self._trust_env
            s.max_redirects = 5
            self._local.session = s
        return s

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
            accept: str = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5") -> Response:
        """GET under the deadline and byte cap. The body is read only when ``read_body(response)`` says so (a
        crawler has no use for a PDF's bytes); a body over the cap is cut and marked ``truncated``."""
        self._wait_turn(url)
        timeout = timeout or self.config.timeout
        deadline = time.monotonic() + timeout
        try:
            r = self.session().get(url, stream=True, allow_redirects=follow_redirects, timeout=(timeout, timeout),
                                   headers={"Accept": accept})
        except requests.Timeout:
            raise FetchFailure("timeout", f"no answer within {timeout:g} s") from None
        except (requests.RequestException, ValueError) as e:  # ValueError: URLs requests cannot send
            raise FetchFailure("error", _describe(e)) from None
        with r:
            media, charset = _content_type(r.headers.get("Content-Type"))
            resp = Response(r.url, r.status_code, r.headers, media, charset)
            if resp.status not in REDIRECTS and (not media or read_body(resp)):
                resp.body, resp.truncated = _read_capped(r, max_bytes, deadline, timeout)
        return resp


def _read_capped(r: requests.Response, max_bytes: int, deadline: float, timeout: float) -> tuple[bytes, bool]:
    """Stream the body until EOF, the cap (cut there) or the deadline (a server dripping bytes is cut off)."""
    buf = bytearray()
    try:
        while True:
            if time.monotonic() > deadline:
                raise FetchFailure("timeout", f"the page took longer than {timeout:g} s to arrive")
            chunk = r.raw.read1(64 * 1024, decode_content=True)
            if not chunk:
                return bytes(buf), False
            buf += chunk
            if len(buf) > max_bytes:
                return bytes(buf[:max_bytes]), True
    except FetchFailure:
        raise
    except Exception as e:  # urllib3 read timeouts, resets, broken compression
        if "timed out" in str(e).lower():
            raise FetchFailure("timeout", f"the server went silent for more than {timeout:g} s") from None
        raise FetchFailure("error", f"the page could not be read ({type(e).__name__})") from None


# ---------------------------------------------------------------------------------------------------------------
# What a page links to


def _is_image_element(el) -> bool:
    if el.name in ("img", "svg") or el.get("role") == "img":
        return True
    if el.name == "input":
        return (el.get("type") or "").lower() == "image"
    return el.name == "object" and el.has_attr("data")


def extract_links(html, page_url: str) -> tuple[list[str], int]:
    """(URLs of the links and frames in document order, resolved against <base>; number of image elements).

    ``html`` is the markup or the tree :func:`server.audit.rules.parse` made of it (the crawler parses each page
    once, for its links and for the rules)."""
    soup = html if isinstance(html, BeautifulSoup) else parse(html)
    base_el = soup.find("base", href=True)
    base = page_url
    if base_el is not None:
        try:
            base = urljoin(page_url, (base_el.get("href") or "").strip())
        except ValueError:
            pass
    links, images = [], 0
    for el in soup.find_all(True):
        if el.name in ("a", "area", "iframe", "frame"):
            ref = el.get("href") if el.name in ("a", "area") else el.get("src")
            url = normalize_url(ref, base) if ref else None
            if url is not None:
                links.append(url)
        images += _is_image_element(el)
    return links, images


# ---------------------------------------------------------------------------------------------------------------
# Sitemaps


_XML_PARSER_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def parse_sitemap(data: bytes, max_bytes: int) -> tuple[str, list[str]]:
    """("urlset" or "sitemapindex", the <loc> URLs). Gzipped files are inflated under ``max_bytes``; the XML
    parser never expands entities, loads DTDs or touches the network (no billion laughs, no XXE). Raises
    ValueError for anything that is not a sitemap."""
    if data[:2] == b"\x1f\x8b":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(data, max_bytes + 1)
        except zlib.error:
            raise ValueError("the gzip data is corrupt") from None
        if len(data) > max_bytes:
            raise ValueError(f"the sitemap is larger than {max_bytes:,} bytes once inflated")
    try:
        root = etree.fromstring(data, etree.XMLParser(**_XML_PARSER_OPTIONS))
    except etree.XMLSyntaxError as e:
        raise ValueError(f"not well-formed XML ({e})") from None
    if root is None or not isinstance(root.tag, str):
        raise ValueError("not a sitemap")
    kind = etree.QName(root).localname
    if kind not in ("urlset", "sitemapindex"):
        raise ValueError(f"not a sitemap (the root element is <{kind}>)")
    child = "url" if kind == "urlset" else "sitemap"
    locs = []
    for entry in root:
        if isinstance(entry.tag, str) and etree.QName(entry).localname == child:
            for loc in entry:
                if isinstance(loc.tag, str) and etree.QName(loc).localname == "loc" and loc.text:
                    locs.append(loc.text.strip())
    return kind, locs


def read_sitemaps(site: Site, sitemap_urls: Iterable[str], explicit: set[str]) -> list[tuple[str, str]]:
    """(page URL, sitemap URL) for every page the sitemaps list, following sitemap indexes. Failures are recorded
    in ``site.site_errors``; an auto-discovered /sitemap.xml that does not exist is not a failure."""
    cfg = site.config
    todo, done, pages = deque(sitemap_urls), set(), []
    while todo and len(done) < cfg.max_sitemaps:
        url = todo.popleft()
        if url in done:
            continue
        done.add(url)

        def fail(message: str) -> None:
            site.site_errors.append({"url": url, "kind": "sitemap", "message": message})

        try:
            r = site.get(url, max_bytes=cfg.max_sitemap_bytes, follow_redirects=True)
        except FetchFailure as e:
            fail(e.message)
            continue
        if r.status != 200:
            if url in explicit or r.status not in (404, 410):
                fail(f"HTTP {r.status}")
            continue
        if r.truncated:
            fail(f"the sitemap is larger than {cfg.max_sitemap_bytes:,} bytes")
            continue
        try:
            kind, locs = parse_sitemap(r.body, cfg.max_sitemap_bytes)
        except ValueError as e:
            fail(str(e))
            continue
        for loc in locs:
            norm = normalize_url(loc)
            if norm is None:
                continue
            if kind == "sitemapindex":
                explicit.add(norm)  # listed by the site: a missing one is an error
                todo.append(norm)
            else:
                pages.append((norm, url))
    if todo:
        site.site_errors.append({"url": todo[0], "kind": "sitemap",
                                 "message": f"more than {cfg.max_sitemaps} sitemaps: the rest were not read"})
    return pages


# ---------------------------------------------------------------------------------------------------------------
# Worker threads


class WorkerPool:
    """A fixed set of daemon threads. Unlike ThreadPoolExecutor, whose threads the interpreter joins at exit, an
    interrupted audit exits at once instead of waiting for the requests still in flight."""

    def __init__(self, n: int, name: str = "audit"):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True) for i in range(n)]
        for t in self._threads:
            t.start()

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        self._queue.put((fut, fn, args))
        return fut

    def _loop(self) -> None:
        while True:
            fut, fn, args = self._queue.get()
            if fut is None:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001 - handed to whoever waits on the future
                fut.set_exception(e)

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put((None, None, None))

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------------------------
# The crawl


@dataclass
class _Outcome:
    page: Page
    links: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    hops: list[str] = field(default_factory=list)  # redirect targets, in order, that passed the site/robots checks
    digest: str | None = None  # of the page's body as fetched (see CrawlState.documents)
    canonical: str | None = None  # its <link rel=canonical>, normalised, on the site's origins


class Crawler:
    """Runs (or resumes) one crawl. ``on_page(page, state)`` is called on the calling thread after each page is
    recorded (progress bars; tests raise KeyboardInterrupt from it)."""

    def __init__(self, config: CrawlConfig, state: CrawlState | None = None, state_path: str | Path | None = None,
                 on_page: Callable[[Page, CrawlState], None] | None = None):
        self.config = config
        self.state = state or CrawlState(start_url=config.start_url, origins=[origin(config.start_url)],
                                         findings=FindingStore(dir=Path(state_path).parent if state_path else None))
        if self.state.start_url != config.start_url:
            raise ValueError(f"the saved crawl is of {self.state.start_url}, not {config.start_url}")
        self.state.done = False  # a resumed crawl may have a larger page limit
        self.state.limit_reached = False
        self.state_path = state_path
        self.on_page = on_page
        self.site = Site(config, self.state.site_errors)
        self.journal = Journal(state_path, self.state)
        self.renderer = None  # server.audit.render.Renderer, started by run() with config.render
        self._stop_requested = False
        self._audited: set | None = None  # the URLs pages were audited under (CrawlState.documents' values)

    # -- bookkeeping (calling thread only) -----------------------------------------------------------------------

    def _skip(self, url: str, reason: str, referrer: str | None) -> None:
        self.state.skipped[reason] = self.state.skipped.get(reason, 0) + 1
        if len(self.state.skipped_urls) < MAX_SKIPPED_URLS:
            self.state.skipped_urls.append({"url": url, "reason": reason, "referrer": referrer})

    def _offer(self, url: str, depth: int, referrer: str | None) -> None:
        """Queue a discovered URL unless it was seen before or one of the crawl's limits excludes it."""
        st = self.state
        if url in st.seen:
            return
        st.seen.add(url)
        self.journal.see(url)
        if origin(url) not in st.origins:
            self._skip(url, "off_site", referrer)
        elif depth > self.config.max_depth:
            st.skipped["depth_limit"] += 1
        elif not self.config.wanted(url):
            self._skip(url, "excluded", referrer)
        elif not self.site.allowed(url):
            self._skip(url, "robots", referrer)
        else:
            st.frontier.append((url, depth, referrer))
            self.journal.queue((url, depth, referrer))

    def _seed(self) -> None:
        st = self.state
        self._offer(self.config.start_url, 0, None)
        if self.config.sitemap:
            explicit: set[str] = set()
            if self.config.sitemap == "auto":
                start_origin = origin(self.config.start_url)
                found = [u for u in map(normalize_url, self.site.robots(start_origin).sitemaps) if u]
                explicit.update(found)
                urls = found + [start_origin + "/sitemap.xml"]
            else:
                urls = [normalize_url(self.config.sitemap)]
                explicit.update(urls)
            for page_url, sitemap_url in read_sitemaps(self.site, urls, explicit):
                self._offer(page_url, 0, sitemap_url)
        st.seeded = True

    def _record(self, item: tuple, outcome: _Outcome) -> None:
        st, page = self.state, outcome.page
        url, depth, _referrer = item
        seen_hop = next((h for h in outcome.hops if h in st.checked), None)
        if seen_hop is not None or page.status == "duplicate":
            # The same record whether the target was audited before this fetch started or while it ran.
            page.status, page.error, page.final_url = "duplicate", "redirects to a page that was already audited", \
                seen_hop or page.final_url
            page.http_status = page.content_type = None
            page.bytes = page.images = 0
            outcome.findings, outcome.links = [], []
        final = page.final_url or url
        if page.status in AUDITED_STATUSES:
            same = self._same_document(outcome, final)
            if same is not None:
                # One document under two URLs (/ and /index.html, a rel=canonical, the same bytes): audited once,
                # under the URL it was first audited at; this one says which (final_url) and why (error).
                page.status, page.final_url, page.error = "duplicate", same[0], same[1]
                page.http_status = page.content_type = None
                page.bytes = page.images = 0
                outcome.findings, outcome.links = [], []
        if page.status in AUDITED_STATUSES:
            if outcome.digest is not None:
                st.documents[outcome.digest] = final
                self.journal.document(outcome.digest, final)
            st.checked.add(final)
            st.seen.add(final)
            self.journal.check(final)
            self.journal.see(final)
            if page.final_url and origin(page.final_url) not in st.origins and depth == 0 and url == st.start_url:
                st.origins.append(origin(page.final_url))  # the start URL redirected: http -> https, www...
        st.checked.add(url)
        self.journal.check(url)
        page.findings = len(outcome.findings)
        st.pages.append(page)
        st.findings.extend(asdict(f) for f in outcome.findings)
        for link in outcome.links:
            self._offer(link, depth + 1, final)

    def _same_document(self, outcome: _Outcome, final: str) -> tuple[str, str] | None:
        """(the URL already audited, why) when this page is a document the crawl audited before, else None."""
        st = self.state
        canonical = outcome.canonical
        if canonical and canonical not in (final, outcome.page.url):
            if self._audited is None or len(self._audited) != len(st.documents):
                self._audited = set(st.documents.values())
            if canonical in self._audited:
                return canonical, f"the same document as {canonical} (its rel=canonical link)"
        if outcome.digest is not None:
            first = st.documents.get(outcome.digest)
            if first is not None and first != final:
                return first, f"the same document as {first} (an identical response)"
        return None

    def _save(self) -> None:
        """One journal line for the page just recorded: O(what it changed)."""
        self.journal.flush(sync_every=self.config.save_every)

    # -- one page (worker threads) -------------------------------------------------------------------------------

    def fetch_page(self, url: str, depth: int, referrer: str | None) -> _Outcome:
        """Fetch one URL (following redirects by hand, so that each hop is checked) and check it if it is HTML.
        Never raises: whatever goes wrong becomes the page's status."""
        page = Page(url=url, depth=depth, referrer=referrer)
        t0 = time.perf_counter()
        try:
            outcome = self._fetch(page)
        except FetchFailure as e:
            page.status, page.error = e.kind, e.message
            outcome = _Outcome(page)
        except Exception as e:  # noqa: BLE001 - one odd page must not end the audit
            log.debug("checking %s failed", url, exc_info=True)
            page.status, page.error = "error", f"the page could not be checked ({type(e).__name__}: {e})"[:300]
            outcome = _Outcome(page)
        page.elapsed_ms = round(1000 * (time.perf_counter() - t0), 1)
        return outcome

    def _fetch(self, page: Page) -> _Outcome:
        cfg, current, chain = self.config, page.url, [page.url]
        is_start = page.url == self.config.start_url and page.depth == 0
        for _hop in range(cfg.max_redirects + 1):
            r = self.site.get(current, cfg.max_bytes, read_body=lambda resp: resp.is_html and resp.status < 300)
            if r.status not in REDIRECTS:
                break
            location = r.headers.get("Location")
            target = normalize_url(location or "", current) if location else None
            if target is None:
                page.http_status = r.status
                page.status, page.error = "http_error", f"HTTP {r.status} without a usable Location"
                return _Outcome(page, hops=chain[1:])
            page.final_url = target
            if target in chain:
                page.status, page.error = "redirect_loop", f"redirect loop: {' -> '.join(chain + [target])}"[:500]
                return _Outcome(page, hops=chain[1:])
            if origin(target) not in self.state.origins and not is_start:
                page.status, page.error = "off_site_redirect", f"redirects to another site ({target})"
                return _Outcome(page, hops=chain[1:])
            if not self.site.allowed(target):
                page.status, page.error = "robots_disallowed", f"redirects to {target}, which robots.txt disallows"
                return _Outcome(page, hops=chain[1:])
            chain.append(target)
            if target in self.state.checked:  # a read of the recording thread's set: _record decides for sure
                page.status = "duplicate"
                return _Outcome(page, hops=chain[1:])
            current = target
        else:
            page.status, page.error = "too_many_redirects", f"more than {cfg.max_redirects} redirects"
            return _Outcome(page, hops=chain[1:])
        page.http_status, page.content_type = r.status, r.content_type or None
        page.final_url = current if current != page.url else None
        if r.status >= 400:
            page.status, page.error = "http_error", f"HTTP {r.status}"
            return _Outcome(page, hops=chain[1:])
        if not 200 <= r.status < 300:
            page.status, page.error = "http_error", f"unexpected HTTP {r.status}"
            return _Outcome(page, hops=chain[1:])
        if not r.is_html:
            page.status = "not_html"
            return _Outcome(page, hops=chain[1:])
        page.bytes = len(r.body)
        html: str | bytes = r.body.decode(r.charset, errors="replace") if r.charset else r.body
        if r.truncated:
            page.status = "truncated"
            page.error = f"larger than {cfg.max_bytes:,} bytes: only the first {cfg.max_bytes:,} were checked"
        if self.renderer is not None:
            from .render import RenderError

            try:
                rendered = self.renderer.render(current, r.body, r.headers.get("Content-Type") or "text/html",
                                                cfg.timeout)
                html = rendered.html
                if len(html) > cfg.max_bytes:
                    html = html[:cfg.max_bytes]
                    page.status = "truncated"
                    page.error = f"the rendered page is larger than {cfg.max_bytes:,} characters: only the first " \
                                 f"{cfg.max_bytes:,} were checked"
            except RenderError as e:
                page.status, page.error = "render_error", f"{e}; the HTML as fetched was checked instead"
        soup = parse(html)
        links, page.images = extract_links(soup, current)
        check = audit_page(soup, current, cfg.rule_options)
        if check.over_budget:
            page.status, page.error = "over_budget", (page.error + "; " if page.error else "") + check.over_budget
        return _Outcome(page, links, check.findings, chain[1:], digest=hashlib.sha256(r.body).hexdigest()[:32],
                        canonical=self._canonical(soup, current))

    def _canonical(self, soup, page_url: str) -> str | None:
        """The page's first ``<link rel=canonical href>``, normalised, when it is on the crawl's origins."""
        for link in soup.find_all("link", href=True, limit=50):  # in the head or not (it happens)
            rel = link.get("rel") or []
            if isinstance(rel, str):
                rel = rel.split()
            if any(r.lower() == "canonical" for r in rel):
                url = normalize_url(str(link["href"]), page_url)
                return url if url is not None and origin(url) in self.state.origins else None
        return None

    # -- the loop ------------------------------------------------------------------------------------------------

    def run(self) -> CrawlState:
        """Crawl until the frontier is empty or the page limit is reached. On KeyboardInterrupt or any other
        exception, the pages in flight go back to the front of the frontier, the state is saved, and the exception
        propagates: the caller writes a partial report."""
        st, cfg = self.state, self.config
        pending: deque[tuple[tuple, Future]] = deque()
        pool = WorkerPool(cfg.concurrency)
        restore = self._defer_sigint()
        own_renderer = False
        try:
            if cfg.render and self.renderer is None:
                from .render import Renderer

                self.renderer, own_renderer = Renderer(cfg.chromium, cfg.user_agent), True
            self.journal.open()
            if not st.seeded:
                self._seed()
                self._save()
            while True:
                # While the start URL is in flight nothing else starts: where it redirects (http -> https)
                # widens the site, and every later fetch must see that, whatever the concurrency.
                start_in_flight = bool(pending) and not st.pages and pending[0][0][0] == cfg.start_url
                while len(pending) < cfg.concurrency and st.frontier and not start_in_flight:
                    if len(st.pages) + len(pending) >= cfg.max_pages:
                        break
                    item = st.frontier.popleft()
                    if item[0] in st.checked:  # reached through a redirect in the meantime
                        self.journal.take(item[0])
                        continue
                    pending.append((item, pool.submit(self.fetch_page, *item)))
                    start_in_flight = not st.pages and item[0] == cfg.start_url
                if not pending:
                    st.limit_reached = bool(st.frontier) and len(st.pages) >= cfg.max_pages
                    break
                item, fut = pending[0]
                outcome = self._result(fut)
                if item[0] in st.checked:
                    # Audited through a redirect recorded after this fetch started: one thread would never have
                    # fetched it, so it is not recorded.
                    pending.popleft()
                    self.journal.take(item[0])
                    continue
                self._record(item, outcome)
                pending.popleft()
                self._save()
                if self.on_page:
                    self.on_page(outcome.page, st)
                self._check_stop()
            st.done = True
        except BaseException:
            for item, fut in reversed(pending):
                fut.cancel()
                st.frontier.appendleft(item)
            raise
        finally:
            restore()
            pool.close()
            self.journal.close()
            if own_renderer:
                self.renderer.close()
                self.renderer = None
        return st

    # -- Ctrl-C --------------------------------------------------------------------------------------------------

    def _defer_sigint(self) -> Callable[[], None]:
        """Make the first Ctrl-C a request to stop at the next safe point (between two pages, never halfway
        through recording one, which would lose or duplicate a page on --resume); a second one stops at once."""
        self._stop_requested = False
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = signal.getsignal(signal.SIGINT)

        def handler(signum, frame):
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True

        signal.signal(signal.SIGINT, handler)
        return lambda: signal.signal(signal.SIGINT, previous)

    def _check_stop(self) -> None:
        if self._stop_requested:
            raise KeyboardInterrupt

    def _result(self, fut: Future) -> _Outcome:
        """Wait for a page, but notice a stop request within a fraction of a second."""
        while True:
            try:
                return fut.result(timeout=0.1)
            except FutureTimeout:
                self._check_stop()
