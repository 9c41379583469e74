"""A big crawl's memory stays flat: the findings (about five per page) live on disk, in the crawl's FindingStore,
and the reports and the suggestions stream them back; what Python holds per page is the page record, not its
findings. Measured with tracemalloc on generated local sites of 500 and 2,000 pages."""
from __future__ import annotations

import gc
import json
import re
import tracemalloc

import pytest

from server.audit.crawl import CrawlConfig, Crawler, CrawlState, FindingStore
from server.audit.report import build_report, to_csv, to_html, to_json, to_sarif, write_report
from server.audit.suggest import Suggester
from test_audit_crawl import LocalSite, html

IMAGES_PER_PAGE = 6  # three without alt, three with a file name as alt: six findings per page
FINDING_KEYS = {"page_url", "rule", "wcag", "severity", "selector", "snippet", "image_url", "message", "current_alt",
                "decorative_candidate"}


class GeneratedPages(dict):
    """LocalSite routes for /, /p1.html ... /p{pages-1}.html, made on request (the site itself holds nothing per
    page, so that tracemalloc sees the crawl's memory only). Each page links the next three."""

    def __init__(self):
        super().__init__()
        self.pages = 0

    def get(self, path, default=None):
        match = re.fullmatch(r"/(?:p(\d+)\.html)?", path)
        n = int(match.group(1) or 0) if match else -1
        if not 0 <= n < self.pages or (match.group(1) == "0"):
            return default
        links = "".join(f'<a href="/p{k}.html">{k}</a>' for k in (n + 1, n + 2, n + 3) if k < self.pages)
        images = "".join(f'<img src="/img/{n}-{k}.png"{f" alt=IMG_{n}_{k}.jpg" if k % 2 else ""}>'
                         for k in range(IMAGES_PER_PAGE))
        body = f"<main><h1>Page {n}</h1><p>{'Some text about the page. ' * 20}</p>{images}{links}</main>"
        return 200, {"Content-Type": "text/html; charset=utf-8"}, html(body, f"Page {n}")


@pytest.fixture(scope="module")
def site():
    s = LocalSite()
    s.routes = GeneratedPages()
    yield s
    s.close()


def _crawl_held_bytes(site: LocalSite, pages: int, tmp_path) -> tuple[int, int, CrawlState]:
    """(bytes Python still holds for the finished crawl, peak bytes while writing its JSON report), under
    tracemalloc, and the state."""
    site.routes.pages = pages
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    config = CrawlConfig(start_url=site.url("/"), max_pages=pages, max_depth=pages, concurrency=2, timeout=5)
    state = Crawler(config, state_path=tmp_path / f"r{pages}.state.jsonl").run()
    site.log.clear()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    report = build_report(state, None, options={}, complete=True, user_agent="t", version="t",
                          finished_at=state.started_at, stream=True)
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    write_report(report, tmp_path / f"r{pages}.json")
    peak = tracemalloc.get_traced_memory()[1] - start
    return held, peak, state


def test_memory_per_page_does_not_grow_with_the_findings(site, tmp_path):
    tracemalloc.start()
    try:
        small_held, small_peak, small = _crawl_held_bytes(site, 500, tmp_path)
        big_held, big_peak, big = _crawl_held_bytes(site, 2000, tmp_path)
    finally:
        tracemalloc.stop()
    assert len(big.pages) == 2000 and len(big.findings) == 2000 * IMAGES_PER_PAGE
    # The state keeps no list of findings: they are on disk, in the store.
    assert isinstance(big.findings, FindingStore)
    assert not any(isinstance(v, list) and v and isinstance(v[0], dict) and FINDING_KEYS <= v[0].keys()
                   for v in vars(big).values())
    # With the findings in a list this was ~4,800 bytes per page (six findings); now it is the page record and its
    # URLs, ~500 bytes.
    per_page = (big_held - small_held) / 1500
    assert per_page < 1500, f"{per_page:.0f} bytes held per page"
    # Writing the report streams the findings: its peak does not grow with them (12,000 findings would be MBs).
    assert big_peak < small_peak + 1_000_000, (small_peak, big_peak)
    report = json.loads((tmp_path / "r2000.json").read_text())
    assert len(report["findings"]) == 12_000 and report["findings"][-1]["id"] == "F12000"
    assert report["findings"] == [{"id": f"F{i + 1}", **f, "suggestion": None} for i, f in enumerate(big.findings)]


def test_a_finding_store_reads_like_the_list_it_replaces(tmp_path):
    items = [{"page_url": f"https://h/{i}", "snippet": "<img alt='\ud800 é \n'>", "n": i} for i in range(2500)]
    store = FindingStore(dir=tmp_path)
    assert len(store) == 0 and list(store) == [] and store == []
    store.extend(items[:2000])
    store.append(items[2000])
    store.extend(items[2001:])
    assert len(store) == 2500 and store == items and list(store) == items  # lone surrogates survive exactly
    assert store[0] == items[0] and store[-1] == items[-1] and store[1234] == items[1234]
    assert store[2001:] == items[2001:] and store[10:20] == items[10:20] and store[::700] == items[::700]
    with pytest.raises(IndexError):
        store[2500]  # noqa: B018
    it = iter(store)
    next(it)
    store.append({"late": True})  # an iteration sees the findings stored when it began
    assert sum(1 for _ in it) == 2499 and len(store) == 2501
    store.close()
    assert len(store) == 0 and list(store) == []


def test_streamed_reports_are_the_reports_built_in_memory(site, tmp_path):
    """Every format, streamed from the store with one suggestion per image URL, is byte for byte the report made
    from a list of findings with one suggestion per finding (empty reports too)."""
    site.routes.pages = 40
    state = Crawler(CrawlConfig(start_url=site.url("/"), max_pages=40, max_depth=40, timeout=5),
                    state_path=tmp_path / "s.state.jsonl").run()

    class Backend:
        version = "fake"

    suggester = Suggester(Backend(), None)
    urls = suggester.image_urls(state.findings)
    assert len(urls) == len(set(urls)) == 40 * IMAGES_PER_PAGE
    described = {u: {"kind": "caption", "alt": f"A picture {i}.", "confidence": 0.5, "model": "m",
                     "image_kind": "photo", "caption": "c", "hedged": False} for i, u in enumerate(urls) if i % 3}
    kw = dict(options={}, complete=True, user_agent="t", version="t", finished_at=state.started_at)
    streamed = build_report(state, lambda f: suggester.suggestion_for(f, described), stream=True, **kw)
    listed_state = CrawlState(start_url=state.start_url, origins=state.origins, pages=state.pages,
                              started_at=state.started_at)
    listed_state.findings = list(state.findings)
    listed = build_report(listed_state, [suggester.suggestion_for(f, described) for f in listed_state.findings],
                          **kw)
    assert isinstance(listed["findings"], list) and streamed["summary"] == listed["summary"]
    assert streamed["summary"]["suggestions"]["caption"] == len(described)
    assert to_json(streamed) == json.dumps(listed, indent=2, ensure_ascii=False) + "\n"
    for render in (to_csv, to_html, to_sarif):
        assert render(streamed) == render(listed)
    sarif = to_sarif(streamed)
    assert sarif == json.dumps(json.loads(sarif), indent=2, ensure_ascii=False) + "\n"  # as json.dumps writes it
    empty = CrawlState(start_url=state.start_url, origins=state.origins, pages=state.pages[:1])
    for stream in (True, False):
        rep = build_report(empty, None, stream=stream, **kw)
        assert to_json(rep) == json.dumps({**rep, "findings": []}, indent=2, ensure_ascii=False) + "\n"
        assert json.loads(to_sarif(rep))["runs"][0]["results"] == []
        assert '"results": []' in to_sarif(rep)
