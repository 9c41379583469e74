"""The crawler: one loop that hands URLs from the frontier to worker threads, records what each fetch found in
frontier order, and keeps the journal; everything it uses is a module of its own in this package."""
from __future__ import annotations

import hashlib
import logging
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from server.netsafe import REDIRECT_STATUSES, FetchError, Redirects

from ..rules import Finding, ImageContext, audit_page, parse
from .config import CrawlConfig
from .discovery import extract_links, read_sitemaps
from .findings import FindingStore
from .journal import Journal
from .pixels import PixelStore
from .site import FetchFailure, Site, is_html
from .state import AUDITED_STATUSES, MAX_SKIPPED_URLS, CrawlState, Page
from .urls import normalize_url, origin
from .workers import WorkerPool

log = logging.getLogger(__name__)


@dataclass
class _Outcome:
    page: Page
    links: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    hops: list[str] = field(default_factory=list)  # redirect targets, in order, that passed the site/robots checks
    digest: str | None = None  # of the page's body as fetched (see CrawlState.documents)
    canonical: str | None = None  # its <link rel=canonical>, normalised, on the site's origins
    images_to_judge: list[ImageContext] = field(default_factory=list)  # RuleOptions.judge_images
    graphics: dict[str, str] = field(default_factory=dict)  # PageCheck.graphics: reference -> data: URL


def _screenshots_by_element(soup, shots: dict) -> dict:
    """The rendered page's graphic screenshots by element (``id()``; None: it showed nothing), their marks taken
    off so that the rules see the page's own markup (server.audit.render.GRAPHIC_MARK)."""
    from ..graphics import screenshot_data_url
    from ..render import GRAPHIC_MARK

    out = {}
    for el in soup.find_all(attrs={GRAPHIC_MARK: True}):
        png = shots.get(str(el.attrs.pop(GRAPHIC_MARK)))
        if png is not None:
            out[id(el)] = screenshot_data_url(png)
    return out


class Crawler:
    """Runs (or resumes) one crawl. ``on_page(page, state)`` is called on the calling thread after each page is
    recorded (progress bars; tests raise KeyboardInterrupt from it)."""

    def __init__(self, config: CrawlConfig, state: CrawlState | None = None, state_path: str | Path | None = None,
                 on_page: Callable[[Page, CrawlState], None] | None = None):
        self.config = config
        store_dir = Path(state_path).parent if state_path else None
        self.state = state or CrawlState(start_url=config.start_url, origins=[origin(config.start_url)],
                                         findings=FindingStore(dir=store_dir),
                                         image_contexts=FindingStore(dir=store_dir),
                                         graphics=PixelStore(PixelStore.path_for(state_path) if state_path else None))
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
            outcome.findings, outcome.links, outcome.images_to_judge = [], [], []
        final = page.final_url or url
        if page.status in AUDITED_STATUSES:
            same = self._same_document(outcome, final)
            if same is not None:
                # One document under two URLs (/ and /index.html, a rel=canonical, the same bytes): audited once,
                # under the URL it was first audited at; this one says which (final_url) and why (error).
                page.status, page.final_url, page.error = "duplicate", same[0], same[1]
                page.http_status = page.content_type = None
                page.bytes = page.images = 0
                outcome.findings, outcome.links, outcome.images_to_judge, outcome.graphics = [], [], [], {}
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
        st.graphics.update(outcome.graphics)  # before the journal line that names them
        st.pages.append(page)
        st.findings.extend(asdict(f) for f in outcome.findings)
        st.image_contexts.extend(asdict(c) for c in outcome.images_to_judge)
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
        cfg, redirects = self.config, Redirects(page.url)
        is_start = page.url == self.config.start_url and page.depth == 0
        while True:
            current = redirects.current
            r = self.site.get(current, cfg.max_bytes, read_body=lambda resp: is_html(resp) and resp.status < 300)
            if r.status not in REDIRECT_STATUSES:
                break
            location = redirects.location(r.status, r.headers.get("Location"))
            target = normalize_url(location) if location else None
            chain = redirects.chain
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
            try:
                redirects.follow(target)
            except FetchError as e:
                too_many = e
            else:
                too_many = None
            if target in self.state.checked:  # a read of the recording thread's set: _record decides for sure
                page.status = "duplicate"
                return _Outcome(page, hops=redirects.chain[1:])
            if too_many is not None:
                page.status, page.error = "too_many_redirects", too_many.message
                return _Outcome(page, hops=redirects.chain[1:])
        chain = redirects.chain
        page.http_status, page.content_type = r.status, r.content_type or None
        page.final_url = current if current != page.url else None
        if r.status >= 400:
            page.status, page.error = "http_error", f"HTTP {r.status}"
            return _Outcome(page, hops=chain[1:])
        if not 200 <= r.status < 300:
            page.status, page.error = "http_error", f"unexpected HTTP {r.status}"
            return _Outcome(page, hops=chain[1:])
        if not is_html(r):
            page.status = "not_html"
            return _Outcome(page, hops=chain[1:])
        page.bytes = len(r.body)
        html: str | bytes = r.body.decode(r.charset, errors="replace") if r.charset else r.body
        if r.truncated:
            page.status = "truncated"
            page.error = f"larger than {cfg.max_bytes:,} bytes: only the first {cfg.max_bytes:,} were checked"
        shots: dict | None = None  # the rendered graphics' screenshots, when the renderer takes them
        if self.renderer is not None:
            from ..render import RenderError

            try:
                rendered = self.renderer.render(current, r.body, r.headers.get("Content-Type") or "text/html",
                                                cfg.timeout)
                html = rendered.html
                shots = rendered.graphics if getattr(self.renderer, "graphics", False) else None
                if len(html) > cfg.max_bytes:
                    html = html[:cfg.max_bytes]
                    page.status = "truncated"
                    page.error = f"the rendered page is larger than {cfg.max_bytes:,} characters: only the first " \
                                 f"{cfg.max_bytes:,} were checked"
            except RenderError as e:
                page.status, page.error = "render_error", f"{e}; the HTML as fetched was checked instead"
        soup = parse(html)
        links, page.images = extract_links(soup, current)
        pixels = _screenshots_by_element(soup, shots) if shots is not None else None
        check = audit_page(soup, current, cfg.rule_options, pixels)
        if check.over_budget:
            page.status, page.error = "over_budget", (page.error + "; " if page.error else "") + check.over_budget
        return _Outcome(page, links, check.findings, chain[1:], digest=hashlib.sha256(r.body).hexdigest()[:32],
                        canonical=self._canonical(soup, current), images_to_judge=check.images_to_judge,
                        graphics=check.graphics)

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
                from ..render import Renderer

                self.renderer, own_renderer = Renderer(cfg.chromium, cfg.user_agent,
                                                       graphics=cfg.rule_options.judge_images), True
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
            self.site.close()
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
