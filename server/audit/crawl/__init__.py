"""Crawl one site for the audit: which pages to fetch, in what order, and what each fetch found.

The crawl is breadth-first from the start URL (plus, with ``sitemap``, every page the site's sitemaps list), stays
on the start URL's origin (and the origin it redirects to, e.g. http -> https), and stops at ``max_pages`` fetched
URLs or ``max_depth`` links from a seed. Each HTML page is checked with :func:`server.audit.rules.check_page` on a
worker thread; results are *recorded* in the order the URLs left the frontier, so a crawl with 8 threads visits
the same pages, in the same order, as one with 1 thread, and a resumed crawl ends where an uninterrupted one would.

Network policy: pages are fetched through the one fetch layer (:mod:`server.netsafe`) under its user's-own-site
policy, not the service's public-only one: the service refuses private addresses because a stranger chooses its
URLs, while an audit is started by the site's owner against their own site, which is often on an intranet, a
staging host or localhost. The URL on the command line is the permission; what a page links to cannot widen it:
other origins are never crawled. Images for suggestions are a separate question, answered in
:mod:`server.audit.suggest`. Redirects follow the fetch layer's one rule, hop by hop, each hop also checked for
loops, other sites and robots.txt.

Politeness (:mod:`.site`): robots.txt with Google's semantics and its Crawl-delay, per host. Every fetch has a
connect/read timeout, a whole-page deadline and a byte cap: a page over the cap is cut there, checked as far as it
got, and reported as truncated. Rule checking has its own budget per page (elements and
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

Memory: the findings (several per page) are not kept in a list but in a :class:`FindingStore`, JSON lines in a
temporary file, which the report writers and the suggestions read back one finding at a time; what a crawl holds
per page is its page record and URLs, not its findings.

One concept per module: :mod:`.urls` (the one spelling of a URL), :mod:`.config` (:class:`CrawlConfig`),
:mod:`.state` (:class:`Page`, :class:`CrawlState`), :mod:`.findings` (:class:`FindingStore`), :mod:`.pixels`
(:class:`PixelStore`: the graphics' pixels, beside the journal), :mod:`.journal`
(:class:`Journal`), :mod:`.atomic_file` (:func:`write_atomic`), :mod:`.site` (fetching, robots.txt, politeness),
:mod:`.discovery` (links and sitemaps), :mod:`.workers` (:class:`WorkerPool`) and :mod:`.crawler`
(:class:`Crawler`, which uses them all).
"""
from __future__ import annotations

from .atomic_file import write_atomic
from .config import USER_AGENT, CrawlConfig
from .crawler import Crawler
from .discovery import extract_links, parse_sitemap, read_sitemaps
from .findings import FindingStore, StreamedSequence
from .journal import JOURNAL_FORMAT, Journal
from .pixels import PixelStore
from .site import FetchFailure, Site, is_html
from .state import (AUDITED_STATUSES, ERROR_STATUSES, MAX_SKIPPED_URLS, PAGE_STATUSES, SKIP_REASONS, CrawlState,
                    Page)
from .urls import normalize_url, origin
from .workers import WorkerPool

__all__ = ["AUDITED_STATUSES", "ERROR_STATUSES", "JOURNAL_FORMAT", "MAX_SKIPPED_URLS", "PAGE_STATUSES", "SKIP_REASONS",
           "USER_AGENT", "CrawlConfig", "CrawlState", "Crawler", "FetchFailure", "FindingStore", "Journal", "Page",
           "PixelStore", "Site", "StreamedSequence", "WorkerPool", "extract_links", "is_html", "normalize_url",
           "origin", "parse_sitemap", "read_sitemaps", "write_atomic"]
