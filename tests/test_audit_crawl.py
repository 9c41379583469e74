"""The audit's crawler against a local multi-page site on 127.0.0.1: robots.txt, sitemaps (index, gzip), redirects
and loops, errors, non-HTML links, size and time limits, depth/page limits, include/exclude, origins, URL
normalisation, and interrupt + resume.

The site helpers here are imported by test_audit_cli.py too."""
from __future__ import annotations

import gzip
import io
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest
from conftest import LoopbackHTTP
from PIL import Image

from server.audit.crawl import (CrawlConfig, Crawler, CrawlState, Site, extract_links, normalize_url,
                                parse_sitemap)

# ---------------------------------------------------------------------------------------------------------------
# A local site


def png(colour: tuple[int, int, int], size: int = 32) -> bytes:
    """A square of ``colour`` on a light background (one colour alone is a blank image, never described)."""
    buf = io.BytesIO()
    im = Image.new("RGB", (size, size), (250, 250, 250) if size >= 8 else colour)
    if size >= 8:
        im.paste(colour, (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
    im.save(buf, "PNG")
    return buf.getvalue()


def html(body: str, title: str = "Test page") -> bytes:
    return f'<!doctype html><html lang="en"><head><title>{title}</title></head><body>{body}</body></html>'.encode()


def urlset(*urls: str) -> bytes:
    entries = "".join(f"<url><loc>{u}</loc></url>" for u in urls)
    return (f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"{entries}</urlset>").encode()


def sitemap_index(*urls: str) -> bytes:
    entries = "".join(f"<sitemap><loc>{u}</loc></sitemap>" for u in urls)
    return (f'<?xml version="1.0" encoding="UTF-8"?>'
            f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</sitemapindex>').encode()


class LocalSite:
    """An HTTP server on 127.0.0.1 serving ``routes`` (path with query -> (status, headers, body) or a callable
    taking the handler), logging every request as (Host header, path)."""

    def __init__(self):
        self.routes: dict = {}
        self.log: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                with site.lock:
                    site.log.append((self.headers.get("Host", ""), self.path))
                route = site.routes.get(self.path)
                try:
                    if callable(route):
                        route(self)
                    else:
                        status, headers, body = route or (404, {"Content-Type": "text/html"}, html("Not found"))
                        self.send_response(status)
                        for k, v in {"Content-Length": str(len(body)), **headers}.items():
                            self.send_header(k, v)
                        self.end_headers()
                        self.wfile.write(body)
                except (ConnectionError, OSError):
                    pass

            def log_message(self, *args):
                pass

        self.http = LoopbackHTTP(Handler)
        self.port, self.root = self.http.port, self.http.url

    def url(self, path: str = "/") -> str:
        return self.root + path

    def page(self, path: str, body: str, status: int = 200) -> None:
        self.routes[path] = (status, {"Content-Type": "text/html; charset=utf-8"}, html(body))

    def paths(self) -> list[str]:
        with self.lock:
            return [p for _, p in self.log]

    def count(self, path: str) -> int:
        return self.paths().count(path)

    def close(self) -> None:
        self.http.close()


def _redirect(to: str, status: int = 302):
    return (status, {"Location": to, "Content-Type": "text/html"}, b"")


def _slow(handler):
    time.sleep(3)
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.end_headers()
    handler.wfile.write(html("late"))


def _drip(handler):
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.end_headers()
    for _ in range(20):
        handler.wfile.write(b"<p>.</p>")
        time.sleep(0.25)


def _huge(handler):
    """About 1 MB of HTML, no Content-Length: the crawler must cut it at its cap."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.end_headers()
    handler.wfile.write(b'<!doctype html><html><body><img src="/img/red.png">')
    for _ in range(1000):
        handler.wfile.write(b"<p>" + b"filler " * 140 + b"</p>")
    handler.wfile.write(b'<img src="/img/blue.png"></body></html>')


IMAGES = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 170, 60), "yellow": (230, 210, 40)}


def build_site(site: LocalSite) -> LocalSite:
    """The test site. Findings per page: / 1 (red, no alt), /about.html 1 (file-name alt), /page 1, /target.html 1,
    /deep/N.html 1 each, /orphan.html 1, /orphan2.html 1, /huge.html 1 (only the image before the cut)."""
    r, port = site.root, site.port
    site.routes.update({
        "/robots.txt": (200, {"Content-Type": "text/plain"},
                        f"User-agent: *\nDisallow: /private/\nSitemap: {r}/sitemap_index.xml\n".encode()),
        "/sitemap_index.xml": (200, {"Content-Type": "application/xml"},
                               sitemap_index(f"{r}/sitemaps/pages.xml", f"{r}/sitemaps/more.xml.gz")),
        "/sitemaps/pages.xml": (200, {"Content-Type": "application/xml"},
                                urlset(f"{r}/orphan.html", f"{r}/private/listed.html",
                                       f"http://localhost:{port}/elsewhere.html")),
        "/sitemaps/more.xml.gz": (200, {"Content-Type": "application/gzip"},
                                  gzip.compress(urlset(f"{r}/orphan2.html"))),
        "/doc.pdf": (200, {"Content-Type": "application/pdf"}, b"%PDF-1.4 not really"),
        "/broken.html": (500, {"Content-Type": "text/html"}, html("Server error")),
        "/loop-a": _redirect("/loop-b"),
        "/loop-b": _redirect(f"{r}/loop-a"),
        "/old": _redirect("/about.html", 301),
        "/moved": _redirect("/target.html", 301),
        "/slow.html": _slow,
        "/drip.html": _drip,
        "/huge.html": _huge,
    })
    for name, colour in IMAGES.items():
        site.routes[f"/img/{name}.png"] = (200, {"Content-Type": "image/png"}, png(colour))
    links = ["/about.html", "/page?b=2&a=1", "/./page?a=1&b=2#top", "/x/../page?a=1&b=2",
             f"HTTP://127.0.0.1:{port}/page?a=1&amp;b=2", "/private/secret.html", "/missing.html", "/broken.html",
             "/doc.pdf", "/img/red.png", "/loop-a", "/old", "/moved", "/huge.html", "/slow.html", "/drip.html",
             f"http://localhost:{port}/offsite.html", f"http://127.0.0.2:{port}/", "mailto:someone@example.com",
             "javascript:alert(1)", "/deep/1.html"]
    site.page("/", '<img src="/img/red.png">' + "".join(f'<a href="{h}">link {i}</a>' for i, h in enumerate(links)))
    site.page("/about.html", '<img src="/img/blue.png" alt="IMG_0001.jpg"><a href="/">home</a>')
    site.page("/page?a=1&b=2", '<img src="/img/green.png"><a href="/about.html">about</a>')
    site.page("/target.html", '<img src="img/yellow.png">')
    site.page("/private/secret.html", '<img src="/img/red.png">')
    site.page("/orphan.html", '<img src="/img/green.png">')
    site.page("/orphan2.html", '<img src="/img/yellow.png">')
    for n in (1, 2, 3):
        site.page(f"/deep/{n}.html", f'<img src="/img/blue.png"><a href="/deep/{n + 1}.html">deeper</a>')
    return site


def served(build):
    """A module fixture's body: the site that ``build`` makes of a fresh LocalSite, closed at the end."""
    s = build(LocalSite())
    yield s
    s.close()


@pytest.fixture(scope="module")
def site():
    yield from served(build_site)


def crawl(site: LocalSite, **kw) -> CrawlState:
    kw.setdefault("timeout", 1.0)
    kw.setdefault("max_bytes", 100_000)
    return Crawler(CrawlConfig(start_url=site.url("/"), **kw)).run()


def by_path(state: CrawlState, site: LocalSite) -> dict:
    return {p.url.removeprefix(site.root): p for p in state.pages}


# ---------------------------------------------------------------------------------------------------------------
# Units


@pytest.mark.parametrize("raw, base, expected", [
    ("HTTP://Example.COM:80/a/./b/../c#frag", None, "http://example.com/a/c"),
    ("https://example.com:443", None, "https://example.com/"),
    ("https://example.com:8443/x", None, "https://example.com:8443/x"),
    ("/p?b=2&a=1&", "http://h/dir/", "http://h/p?a=1&b=2"),
    ("../up/%7euser/%2f", "http://h/a/b/", "http://h/a/up/~user/%2F"),
    ("/../../x", "http://h/", "http://h/x"),
    ("  /sp ace\n", "http://h/", "http://h/sp%20ace"),
    ("http://bücher.example/ä", None, "http://xn--bcher-kva.example/%C3%A4"),
    ("http://[::1]:8080/", None, "http://[::1]:8080/"),
    ("mailto:a@b.c", None, None),
    ("javascript:alert(1)", None, None),
    ("ftp://h/x", None, None),
    ("http://user:pw@h/", None, None),
    ("http://h:99999/", None, None),
    ("http://[::1/", None, None),
    ("//other.example/x", "https://h/", "https://other.example/x"),
])
def test_normalize_url(raw, base, expected):
    assert normalize_url(raw, base) == expected


def test_extract_links_uses_base_href_and_counts_images():
    links, images = extract_links(
        '<html><head><base href="/sub/"></head><body><a href="a.html">a</a><a href="#top">top</a>'
        '<area href="b.html"><iframe src="/frame.html"></iframe><a href="mailto:x@y.z">m</a>'
        '<img src="x.png"><input type="IMAGE" src="go.png"><svg role="img"></svg><div role="img"></div></body>'
        "</html>", "http://h/dir/page.html")
    assert links == ["http://h/sub/a.html", "http://h/sub/", "http://h/sub/b.html", "http://h/frame.html"]
    assert images == 4
    assert extract_links("", "http://h/") == ([], 0)
    assert extract_links('<?xml version="1.0" encoding="utf-8"?><html><a href="/x">x</a></html>',
                         "http://h/")[0] == ["http://h/x"]


def test_parse_sitemap_kinds_gzip_and_refusals():
    assert parse_sitemap(urlset("http://h/a", " http://h/b "), 10_000) == ("urlset", ["http://h/a", "http://h/b"])
    assert parse_sitemap(gzip.compress(sitemap_index("http://h/s.xml")), 10_000) == ("sitemapindex",
                                                                                     ["http://h/s.xml"])
    with pytest.raises(ValueError, match="once inflated"):
        parse_sitemap(gzip.compress(urlset(*["http://h/" + "x" * 50] * 1000)), 10_000)
    with pytest.raises(ValueError, match="not a sitemap"):
        parse_sitemap(b"<rss><channel/></rss>", 10_000)
    with pytest.raises(ValueError, match="well-formed"):
        parse_sitemap(b"<html><body>oops", 10_000)


def test_parse_sitemap_never_expands_entities():
    """Billion laughs and external entities (XXE): the parser leaves entities unexpanded."""
    bomb = (b'<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
            b'<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>http://h/&d;</loc></url>'
            b"<url><loc>&x;</loc></url></urlset>")
    kind, locs = parse_sitemap(bomb, 10_000)
    assert kind == "urlset" and locs == ["http://h/"]
    assert not any("root:" in loc or "aaaa" in loc for loc in locs)


def test_config_rejects_bad_input():
    for bad in ("ftp://h/", "not a url", "http://"):
        with pytest.raises(ValueError, match="http or https"):
            CrawlConfig(start_url=bad)
    with pytest.raises(ValueError, match="regular expression"):
        CrawlConfig(start_url="http://h/", include=("(",))
    with pytest.raises(ValueError, match="sitemap"):
        CrawlConfig(start_url="http://h/", sitemap="file:///etc/passwd")


def test_robots_crawl_delay_is_honoured_and_capped():
    s = LocalSite()
    try:
        s.routes["/robots.txt"] = (200, {"Content-Type": "text/plain"}, b"User-agent: *\nCrawl-delay: 7\n")
        site = Site(CrawlConfig(start_url=s.url("/"), delay=0.5, max_crawl_delay=5))
        assert site.crawl_delay(s.url("/x")) == 5
        site = Site(CrawlConfig(start_url=s.url("/"), delay=9))
        assert site.crawl_delay(s.url("/x")) == 9
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------------------------
# A whole crawl


@pytest.fixture(scope="module")
def full(site):
    return crawl(site, sitemap="auto", concurrency=4)


def test_crawl_records_each_kind_of_page(full, site):
    pages = by_path(full, site)
    assert pages["/"].status == "ok" and pages["/"].depth == 0
    assert pages["/about.html"].status == "ok"
    assert pages["/missing.html"].status == "http_error" and pages["/missing.html"].http_status == 404
    assert pages["/missing.html"].referrer == site.url("/")
    assert pages["/broken.html"].status == "http_error" and pages["/broken.html"].http_status == 500
    assert pages["/doc.pdf"].status == "not_html" and pages["/doc.pdf"].content_type == "application/pdf"
    assert pages["/img/red.png"].status == "not_html" and pages["/img/red.png"].content_type == "image/png"
    assert pages["/loop-a"].status == "redirect_loop" and "/loop-b" in pages["/loop-a"].error
    assert pages["/moved"].status == "ok" and pages["/moved"].final_url == site.url("/target.html")
    assert pages["/old"].status == "duplicate"  # redirects to /about.html, which was already audited
    assert pages["/slow.html"].status == "timeout"
    assert pages["/drip.html"].status == "timeout"
    assert pages["/huge.html"].status == "truncated" and pages["/huge.html"].bytes == 100_000


def test_crawl_follows_sitemap_index_and_gzip_sitemaps(full, site):
    pages = by_path(full, site)
    assert pages["/orphan.html"].status == "ok" and pages["/orphan.html"].depth == 0
    assert pages["/orphan.html"].referrer == site.url("/sitemaps/pages.xml")
    assert pages["/orphan2.html"].status == "ok"
    assert not full.site_errors


def test_explicit_sitemaps_and_their_errors(site):
    state = crawl(site, sitemap=site.url("/sitemaps/pages.xml"), include=(r"/orphan",))
    assert [p.url.removeprefix(site.root) for p in state.pages] == ["/", "/orphan.html"]
    assert not state.site_errors
    state = crawl(site, sitemap=site.url("/no-such-sitemap.xml"), include=(r"/orphan",))
    assert [(e["kind"], e["message"]) for e in state.site_errors] == [("sitemap", "HTTP 404")]
    state = crawl(site, sitemap=site.url("/about.html"), include=(r"/orphan",))
    assert state.site_errors[0]["message"].startswith("not well-formed XML")


def test_crawl_respects_robots_and_origin(full, site):
    assert site.count("/private/secret.html") == 0 and site.count("/private/listed.html") == 0
    reasons = {s["url"].removeprefix(site.root): s["reason"] for s in full.skipped_urls}
    assert reasons["/private/secret.html"] == "robots" and reasons["/private/listed.html"] == "robots"
    assert reasons[f"http://localhost:{site.port}/offsite.html"] == "off_site"
    assert reasons[f"http://localhost:{site.port}/elsewhere.html"] == "off_site"
    assert reasons[f"http://127.0.0.2:{site.port}/"] == "off_site"
    assert not any(host.startswith("localhost") for host, _ in site.log)  # never fetched from the other origin
    assert full.skipped["robots"] == 2 and full.skipped["off_site"] == 3


def test_crawl_normalises_and_deduplicates(full, site):
    assert site.count("/page?a=1&b=2") == 1
    assert sum(p.url.startswith(site.url("/page")) for p in full.pages) == 1
    assert len({p.url for p in full.pages}) == len(full.pages)
    assert not any("mailto" in p.url or "javascript" in p.url for p in full.pages)


def test_crawl_findings(full, site):
    per_page = {f["page_url"].removeprefix(site.root): f["rule"] for f in full.findings}
    assert per_page["/"] == "image-alt"
    assert per_page["/about.html"] == "alt-suspicious-filename"
    assert per_page["/target.html"] == "image-alt"  # checked at the redirect's target, image resolved there
    assert any(f["image_url"] == site.url("/img/yellow.png") and f["page_url"] == site.url("/target.html")
               for f in full.findings)
    huge = [f for f in full.findings if f["page_url"] == site.url("/huge.html")]
    assert [f["image_url"] for f in huge] == [site.url("/img/red.png")]  # the image after the cut is not seen
    assert full.done and not full.frontier


def test_depth_and_page_limits(site):
    shallow = crawl(site, max_depth=1, include=(r"/deep/",))
    assert [p.url.removeprefix(site.root) for p in shallow.pages] == ["/", "/deep/1.html"]
    assert shallow.skipped["depth_limit"] == 1
    limited = crawl(site, max_pages=3, include=(r"/(about|page|deep)",))
    assert len(limited.pages) == 3 and limited.limit_reached and limited.frontier


def test_include_exclude(site):
    state = crawl(site, include=(r"/deep/",), exclude=(r"/deep/2",))
    assert [p.url.removeprefix(site.root) for p in state.pages] == ["/", "/deep/1.html"]
    assert site.url("/deep/2.html") in {s["url"] for s in state.skipped_urls if s["reason"] == "excluded"}


def test_order_does_not_depend_on_concurrency(site):
    kw = dict(include=(r"/(about|page|deep|moved|old|target)",))
    one, many = crawl(site, concurrency=1, **kw), crawl(site, concurrency=6, **kw)
    assert [p.url for p in one.pages] == [p.url for p in many.pages]
    assert one.findings == many.findings


def test_delay_spaces_requests(site):
    t0 = time.monotonic()
    state = crawl(site, delay=0.15, concurrency=4, include=(r"/deep/",))
    assert len(state.pages) == 5  # /, /deep/1-3.html and the missing /deep/4.html
    assert time.monotonic() - t0 >= 5 * 0.15  # robots.txt and 5 pages: 6 requests, 5 gaps


def test_start_redirect_to_other_origin_is_followed():
    s = LocalSite()
    try:
        s.routes["/"] = _redirect(f"http://localhost:{s.port}/home.html")
        s.routes["/home.html"] = (200, {"Content-Type": "text/html"}, html('<a href="/two.html">2</a>'))
        s.routes["/two.html"] = (200, {"Content-Type": "text/html"}, html('<img src="x.png">'))
        state = Crawler(CrawlConfig(start_url=s.url("/"), timeout=2)).run()
        assert [p.status for p in state.pages] == ["ok", "ok"]
        assert state.origins == [s.root, f"http://localhost:{s.port}"]
        assert state.findings[0]["page_url"] == f"http://localhost:{s.port}/two.html"
    finally:
        s.close()


def test_interrupted_crawl_resumes_without_refetching(site, tmp_path):
    kw = dict(include=(r"/(about|page|deep|moved|target)",), concurrency=1, timeout=1.0)
    reference = crawl(site, **kw)
    before = len(site.log)
    state_file = tmp_path / "state.json"
    config = CrawlConfig(start_url=site.url("/"), **kw)

    def stop_after_three(page, state):
        if len(state.pages) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Crawler(config, state_path=state_file, on_page=stop_after_three).run()
    saved = CrawlState.load(state_file)
    assert len(saved.pages) == 3 and saved.frontier and not saved.done
    resumed = Crawler(config, saved, state_path=state_file).run()
    assert [p.url for p in resumed.pages] == [p.url for p in reference.pages]
    assert resumed.findings == reference.findings
    fetched = [p for p in site.paths()[before:] if p != "/robots.txt"]
    assert len(fetched) == len(set(fetched)) == len(reference.pages) + 1  # +1: /moved's hop to /target.html
    assert CrawlState.load(state_file).done


def test_state_file_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ValueError, match="JSON"):
        CrawlState.load(bad)
    bad.write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not an alt-text audit state"):
        CrawlState.load(bad)
    bad.write_text('{"format": "alt-text-audit-state/1", "start_url": "http://h/"}')  # no longer read
    with pytest.raises(ValueError, match="before the journal"):
        CrawlState.load(bad)


def test_one_document_is_audited_once(tmp_path):
    """/ and /index.html serve the same bytes, /print.html names / as its canonical URL: three documents, four
    images without alt, four findings (not six), and each duplicate URL says which page it is the same as."""
    s = LocalSite()
    try:
        home = '<img src="/img/a.png"><img src="/img/b.png"><a href="/index.html">home</a>' \
               '<a href="/print.html">print</a><a href="/other.html">other</a>'
        s.page("/", home)
        s.page("/index.html", home)
        s.page("/print.html", f'<link rel="canonical" href="{s.url("/")}"><img src="/img/a.png"><p>printable</p>')
        s.page("/other.html", '<img src="/img/c.png"><img src="/img/d.png"><a href="/index.html">home</a>')
        state = Crawler(CrawlConfig(start_url=s.url("/"), timeout=2.0), None, tmp_path / "st.jsonl").run()
        pages = by_path(state, s)
        assert pages["/"].status == "ok" and pages["/other.html"].status == "ok"
        assert pages["/index.html"].status == "duplicate" and pages["/index.html"].final_url == s.url("/")
        assert "same document as" in pages["/index.html"].error
        assert pages["/print.html"].status == "duplicate" and pages["/print.html"].final_url == s.url("/")
        assert "canonical" in pages["/print.html"].error
        assert len(state.findings) == 4
        assert {f["page_url"] for f in state.findings} == {s.url("/"), s.url("/other.html")}
        # the digests survive a resume
        assert CrawlState.load(tmp_path / "st.jsonl").documents == state.documents
    finally:
        s.close()


def test_canonical_to_a_page_not_yet_audited_is_audited():
    s = LocalSite()
    try:
        s.page("/", '<link rel="canonical" href="/elsewhere.html"><img src="/img/a.png">')
        state = Crawler(CrawlConfig(start_url=s.url("/"), timeout=2.0)).run()
        assert by_path(state, s)["/"].status == "ok" and len(state.findings) == 1
    finally:
        s.close()
