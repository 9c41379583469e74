"""Hostile and awkward sites (issue 11 section 2): markup built to make the rules slow, a per-page rule budget that
is recorded and never fatal, robots.txt with Google's semantics (protego), UTS-46 host names, and a crawl whose
records do not depend on --concurrency."""
from __future__ import annotations

import dataclasses
import time

import pytest

from server.audit.crawl import CrawlConfig, Crawler, Site, normalize_url
from server.audit.report import SCHEMA, build_report
from server.audit.rules import RuleOptions, audit_page, background_image_url, check_page
from test_audit_crawl import LocalSite, _redirect, html

PAGE = "https://example.com/p.html"


# --- Rules that stay fast on any markup ----------------------------------------------------------------------------

def test_unterminated_background_urls_are_scanned_in_linear_time():
    page = '<div role="img" style="' + "background:url(" * 600 + '"></div>'  # 9 KB: 10 s with the old regex
    t0 = time.perf_counter()
    assert [f.rule for f in check_page(page, PAGE)] == ["role-img-alt"]
    big = '<div role="img" style="' + "background: url(x" * 50_000 + '"></div>'
    assert [f.image_url for f in check_page(big, PAGE)] == [None]
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize("style, url", [
    ("background:url(a.png)", "a.png"),
    ('color: red; background-image: url( "b c.png" ) no-repeat', "b c.png"),
    ("background: red url('x.jpg') center", "x.jpg"),
    ("background: none; background-image: URL(z.gif)", "z.gif"),
    ("mask: url(m.png); background: blue", None),
    ("xbackground:url(a.png)", None),
    ("background:url(", None),
    ('background:url("never closed', None),
])
def test_background_image_url(style, url):
    assert background_image_url(style) == url


def test_a_page_of_many_sibling_images_is_checked_in_linear_time():
    page = "<div>" + '<img src="a.png">' * 20_000 + "</div>"
    t0 = time.perf_counter()
    result = audit_page(page, PAGE)
    assert time.perf_counter() - t0 < 8.0  # one pass; the old sibling counting was quadratic (minutes)
    assert len(result.findings) == 20_000 and result.over_budget is None
    assert result.findings[-1].selector == "html > body > div > img:nth-of-type(20000)"
    labelled = "".join(f'<p id="l{i}">Label {i}</p><img src="{i}.png" aria-labelledby="l{i}">' for i in range(5000))
    t0 = time.perf_counter()
    assert audit_page(labelled, PAGE).findings == []  # ids looked up in an index, not one document scan each
    assert time.perf_counter() - t0 < 4.0


def test_the_time_budget_cuts_checking_short_and_says_so():
    page = '<img src="a.png">' * 500
    result = audit_page(page, PAGE, RuleOptions(max_seconds=0.0))
    assert result.over_budget and "longer than 0 s" in result.over_budget
    assert len(result.findings) < 500  # the images checked before the cut, no error


def test_the_element_budget_checks_the_first_elements_only():
    page = '<img src="a.png">' * 50
    result = audit_page(page, PAGE, RuleOptions(max_elements=20))
    assert "more than 20 elements" in result.over_budget
    assert 0 < len(result.findings) < 50


def test_a_page_over_budget_is_recorded_and_the_crawl_goes_on():
    import jsonschema

    site = LocalSite()
    try:
        site.page("/", '<a href="/big.html">big</a><a href="/small.html">small</a>')
        site.page("/big.html", '<img src="a.png">' * 300)
        site.page("/small.html", '<img src="b.png">')
        config = CrawlConfig(start_url=site.url("/"), timeout=2, rule_options=RuleOptions(max_elements=100))
        state = Crawler(config).run()
    finally:
        site.close()
    pages = {p.url.removeprefix(site.root): p for p in state.pages}
    assert pages["/big.html"].status == "over_budget" and "100 elements" in pages["/big.html"].error
    assert pages["/small.html"].status == "ok"
    assert {f["page_url"] for f in state.findings} == {site.url("/big.html"), site.url("/small.html")}
    report = build_report(state, None, options={}, complete=True, user_agent="t", version="t",
                          finished_at=time.time())
    jsonschema.validate(report, SCHEMA)
    assert report["summary"]["pages_audited"] == 3
    assert [e["kind"] for e in report["crawl_errors"]] == ["over_budget"]


# --- robots.txt with Google's semantics ----------------------------------------------------------------------------

ROBOTS = ("User-agent: *\nDisallow: /*?sessionid=\nDisallow: /shop/\nAllow: /shop/open.html\n"
          "Disallow: /*.pdf$\nCrawl-delay: 0.25\n")


def test_robots_wildcards_longest_match_and_fractional_delay():
    site = LocalSite()
    try:
        site.routes["/robots.txt"] = (200, {"Content-Type": "text/plain"}, ROBOTS.encode())
        s = Site(CrawlConfig(start_url=site.url("/")))
        assert not s.allowed(site.url("/cart?sessionid=42"))
        assert s.allowed(site.url("/cart?page=2"))
        assert s.allowed(site.url("/shop/open.html"))  # the longer Allow wins inside a disallowed folder
        assert not s.allowed(site.url("/shop/closed.html"))
        assert not s.allowed(site.url("/doc.pdf")) and s.allowed(site.url("/doc.pdf.html"))
        assert s.crawl_delay(site.url("/")) == 0.25
    finally:
        site.close()


def test_robots_for_our_user_agent_wins_over_the_star_group():
    site = LocalSite()
    try:
        site.routes["/robots.txt"] = (200, {"Content-Type": "text/plain"},
                                      b"User-agent: alt-text-audit\nDisallow: /drafts/\n\nUser-agent: *\nDisallow: /\n")
        s = Site(CrawlConfig(start_url=site.url("/")))
        assert s.allowed(site.url("/blog/")) and not s.allowed(site.url("/drafts/x"))
    finally:
        site.close()


# --- Host names as browsers spell them -----------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("http://faß.de/", "http://xn--fa-hia.de/"),  # Python's IDNA 2003 codec says fass.de: another domain
    ("http://Bücher.Example/", "http://xn--bcher-kva.example/"),
    ("http://ＥＸＡＭＰＬＥ.com/", "http://example.com/"),  # UTS-46 maps full-width letters
    ("http://my_host.local/", "http://my_host.local/"),  # ASCII intranet names are kept as they are
    ("http://xn--fa-hia.de/", "http://xn--fa-hia.de/"),
])
def test_hosts_are_encoded_by_uts46(raw, expected):
    assert normalize_url(raw) == expected


def test_a_host_idna_refuses_is_not_a_url():
    assert normalize_url("http://a\u200db.example/") is None  # ZERO WIDTH JOINER outside its context


# --- Concurrency changes nothing in the records ---------------------------------------------------------------------

def _slow_page(body: str, seconds: float = 0.3):
    def handler(h):
        time.sleep(seconds)
        data = html(body)
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
    return handler


def build_redirect_site(site: LocalSite) -> LocalSite:
    """Redirects to pages audited before, during and after the redirect's own fetch."""
    site.routes.update({
        "/t": _slow_page('<img src="t.png">'),  # audited directly, and reached again through /r-after
        "/r-before": _redirect("/u"),  # leads to /u before /u's own turn: /u is not fetched again
        "/u": _slow_page('<img src="u.png">'),
        "/r-after": _redirect("/t"),  # /t is recorded first, but still in flight when this fetch starts
        "/hop": _redirect("/missing"),  # an error page, recorded before /r-hop
        "/r-hop": _redirect("/hop"),  # goes through /hop (already recorded) on its way to the 404
        "/r-off": _redirect("http://localhost:1/elsewhere"),
    })
    links = ["/t", "/r-before", "/u", "/r-after", "/hop", "/r-hop", "/r-off", "/r-before"]
    site.page("/", "".join(f'<a href="{h}">{h}</a>' for h in links))
    return site


def records(state) -> dict:
    pages = [{k: v for k, v in dataclasses.asdict(p).items() if k != "elapsed_ms"} for p in state.pages]
    return {"pages": pages, "findings": state.findings, "skipped": state.skipped, "skipped_urls": state.skipped_urls,
            "checked": sorted(state.checked), "frontier": list(state.frontier), "limit_reached": state.limit_reached}


def test_concurrency_8_records_exactly_what_concurrency_1_records():
    site = build_redirect_site(LocalSite())
    try:
        one = records(Crawler(CrawlConfig(start_url=site.url("/"), concurrency=1, timeout=3)).run())
        for _ in range(2):
            assert records(Crawler(CrawlConfig(start_url=site.url("/"), concurrency=8, timeout=3)).run()) == one
        limited = [records(Crawler(CrawlConfig(start_url=site.url("/"), concurrency=c, timeout=3,
                                               max_pages=4)).run()) for c in (1, 8)]
        assert limited[0] == limited[1] and limited[0]["limit_reached"]
    finally:
        site.close()
    by_url = {p["url"].removeprefix(site.root): p for p in one["pages"]}
    assert "/u" not in by_url  # audited through /r-before
    assert by_url["/r-before"]["status"] == "ok" and by_url["/r-before"]["final_url"] == site.url("/u")
    assert by_url["/r-after"]["status"] == "duplicate" and by_url["/r-after"]["http_status"] is None
    assert by_url["/r-hop"]["status"] == "duplicate" and by_url["/r-hop"]["final_url"] == site.url("/hop")
    assert by_url["/hop"]["status"] == "http_error"
