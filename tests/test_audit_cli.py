"""``alt-text audit`` end to end against a local site: reports, --fail-on exit codes, clear errors for bad input,
suggestions (a fake captioner, a fake service, and the tiny real model), interrupt + --resume."""
from __future__ import annotations

import base64
import csv
import io
import json
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace

import jsonschema
import numpy as np
import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner
from conftest import LoopbackHTTP
from test_audit_crawl import IMAGES, LocalSite, png, served

from server.audit import command
from server.audit.command import audit
from server.audit.crawl import CrawlConfig, Site
from server.audit.report import CSV_COLUMNS, SCHEMA
from server.audit.rules import check_page
from server.audit.suggest import ImageSource, LoadedImage, ServiceBackend
from server.describe import Describer, ModelOutput, Policy, Wording
from server.netsafe.fetch import FetchError, FetchLimits

DATA_PNG = "data:image/png;base64," + base64.b64encode(png((230, 210, 40), 24)).decode()
FINDINGS = 9  # see build_small_site
WCAG_FAILURES = 7


def build_small_site(site: LocalSite) -> LocalSite:
    """Findings: / 3 (red, spacer, missing.png), /a.html 2 (placeholder alt, red again), /b.html 2 (green, svg),
    /c.html 1 (data: URL), /d.html 1 (file-name alt). WCAG failures: all but the two alt-text heuristics."""
    site.routes["/robots.txt"] = (200, {"Content-Type": "text/plain"}, b"User-agent: *\nAllow: /\n")
    for name, colour in IMAGES.items():
        site.routes[f"/img/{name}.png"] = (200, {"Content-Type": "image/png"}, png(colour))
    site.routes["/img/spacer.gif"] = (200, {"Content-Type": "image/png"}, png((255, 255, 255), 1))
    site.page("/", '<img src="/img/red.png"><img src="/img/spacer.gif" width="1" height="1">'
                   '<img src="/img/missing.png"><a href="/a.html">a</a><a href="/b.html">b</a><a href="c.html">c</a>')
    site.page("/a.html", '<img src="/img/blue.png" alt="image"><p><img src="/img/red.png"></p><a href="/d.html">d</a>')
    site.page("/b.html", '<img src="/img/green.png"><svg role="img"><circle r="3"></circle></svg>')
    site.page("/c.html", f'<img src="{DATA_PNG}">')
    site.page("/d.html", '<img src="/img/yellow.png" alt="DSC_0001.jpg">')
    return site


@pytest.fixture(scope="module")
def site():
    yield from served(build_small_site)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Never touch the user's cache; each test starts with an empty one."""
    monkeypatch.setenv("ALT_TEXT_CACHE_PATH", str(tmp_path / "cache.sqlite3"))
    monkeypatch.delenv("ALT_TEXT_CACHE", raising=False)
    monkeypatch.chdir(tmp_path)


class FakeDescriber(Describer):
    """The real describe pipeline (no fitted heads, no OCR) over a fake model that names the colour in the middle
    of the image; records the batch sizes it was given."""

    def __init__(self):
        self.captioner = SimpleNamespace(version="fake-1")
        self.heads, self.ocr, self.policy, self.wording = None, None, Policy(), Wording()
        self.namespace = "fake-1:describe"
        self.calls: list[int] = []

    def run_model(self, images):
        self.calls.append(len(images))
        out = []
        for im in images:
            rgb = im.convert("RGB").getpixel((im.width // 2, im.height // 2))
            name = min(IMAGES, key=lambda n: sum((a - b) ** 2 for a, b in zip(IMAGES[n], rgb)))
            out.append(ModelOutput(f"A {name} square.", f"a {name} square", 0.75, np.zeros(4, np.float32), None))
        return out


def run(*args, **kw):
    result = CliRunner().invoke(audit, [str(a) for a in args], **kw)
    assert "Traceback" not in result.output, result.output
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


# ---------------------------------------------------------------------------------------------------------------
# Reports and exit codes


def test_reports_in_every_format(site, tmp_path):
    r = run(site.url("/"), "--no-suggest", "--out", tmp_path / "r.json", "--out", tmp_path / "r.csv",
            "--out", tmp_path / "r.html")
    assert r.exit_code == 0, r.output
    assert f"Audited 5 page(s) of {site.url('/')}" in r.stdout and f"{FINDINGS} finding(s)" in r.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    assert report["complete"] and report["summary"]["findings"] == FINDINGS
    assert report["summary"]["wcag_failures"] == WCAG_FAILURES
    assert report["options"]["suggestions"] == "off"
    decorative = [f for f in report["findings"] if f["decorative_candidate"]]
    assert [f["suggestion"]["kind"] for f in decorative] == ["decorative"]  # needs no model
    assert {f["suggestion"] is None for f in report["findings"] if f["image_url"] and not f["decorative_candidate"]} \
        == {True}
    rows = list(csv.DictReader((tmp_path / "r.csv").open(newline="", encoding="utf-8")))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == FINDINGS
    page = (tmp_path / "r.html").read_text()
    assert check_page(page, (tmp_path / "r.html").as_uri()) == []
    assert not (tmp_path / "r.state.jsonl").exists()  # finished: nothing to resume


def test_default_prints_a_summary(site):
    r = run(site.url("/"), "--no-suggest")
    assert r.exit_code == 0
    assert "by severity: critical 6, serious 1, moderate 2, minor 0" in r.stdout
    assert "image-alt 6" in r.stdout and "Report:" not in r.stdout


@pytest.mark.parametrize("args, code", [
    (["--fail-on", WCAG_FAILURES - 1], 3),
    (["--fail-on", WCAG_FAILURES], 0),
    (["--fail-on", FINDINGS - 1, "--fail-scope", "all"], 3),
    (["--fail-on", FINDINGS, "--fail-scope", "all"], 0),
])
def test_fail_on(site, args, code):
    r = run(site.url("/"), "--no-suggest", *args)
    assert r.exit_code == code, r.output
    if code:
        assert "more than --fail-on" in r.stderr


@pytest.mark.parametrize("args, code, message", [
    (["ftp://127.0.0.1/"], 2, "not an http or https URL"),
    (["{site}", "--out", "report.txt"], 2, "the format comes from the extension"),
    (["{site}", "--out", "no/such/dir/r.json"], 2, "does not exist"),
    (["{site}", "--include", "("], 2, "not a valid regular expression"),
    (["{site}", "--sitemap", "nonsense"], 2, "--sitemap must be 'auto' or an http(s) URL"),
    (["{site}", "--max-pages", "0"], 2, "0 is not in the range"),
    (["{site}", "--no-suggest", "--server", "http://127.0.0.1:1"], 2, "cannot be combined"),
    (["{site}", "--resume", "--no-suggest"], 1, "no saved audit to resume"),
    (["{site}", "--server", "http://127.0.0.1:1"], 1, "cannot reach the service"),
    (["{site}", "--checkpoint", "missing.safetensors"], 1, "checkpoint file not found"),
    (["http://127.0.0.1:1/", "--no-suggest"], 1, "no page could be audited: http://127.0.0.1:1/: connection refused"),
])
def test_bad_input_is_a_one_line_error(site, args, code, message):
    r = run(*[a.replace("{site}", site.url("/")) for a in args])
    assert r.exit_code == code, r.output
    assert message in r.output


def test_resume_refuses_another_sites_state(site, tmp_path):
    (tmp_path / "r.state.jsonl").write_text('{"format": "alt-text-audit-state/1"}')
    r = run(site.url("/"), "--no-suggest", "--resume", "--out", "r.json")
    assert r.exit_code == 1 and "cannot resume from" in r.output


# ---------------------------------------------------------------------------------------------------------------
# Interrupt and resume


@pytest.mark.parametrize("error, code, said", [(KeyboardInterrupt, 130, "interrupted"),
                                                (RuntimeError, 1, "internal error (RuntimeError")])
def test_interrupt_or_crash_writes_partial_report_and_resume_finishes(site, tmp_path, monkeypatch, error, code,
                                                                      said):
    args = [site.url("/"), "--no-suggest", "--concurrency", "1", "--out", "r.json", "--out", "r.html"]
    reference = run(*args[:-4], "--out", "ref.json")
    assert reference.exit_code == 0
    expected = json.loads((tmp_path / "ref.json").read_text())

    original = command.Progress.page

    def stop_after_two(self, page, state):
        original(self, page, state)
        if len(state.pages) == 2:
            raise error("simulated")

    monkeypatch.setattr(command.Progress, "page", stop_after_two)
    start = len(site.log)
    r = run(*args)
    assert r.exit_code == code and said in r.stderr and "--resume" in r.stderr
    partial = json.loads((tmp_path / "r.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(partial)
    assert not partial["complete"] and len(partial["pages"]) == 2
    assert "Partial report" in (tmp_path / "r.html").read_text()
    assert (tmp_path / "r.state.jsonl").exists()

    monkeypatch.setattr(command.Progress, "page", original)
    r = run(*args, "--resume")
    assert r.exit_code == 0, r.output
    final = json.loads((tmp_path / "r.json").read_text())
    assert final["complete"]
    assert [f["id"] for f in final["findings"]] == [f["id"] for f in expected["findings"]]
    assert [(f["page_url"], f["rule"]) for f in final["findings"]] == \
        [(f["page_url"], f["rule"]) for f in expected["findings"]]
    pages = [p for p in site.paths()[start:] if p != "/robots.txt"]
    assert len(pages) == len(set(pages)) == 5  # no page fetched twice across the two runs
    assert not (tmp_path / "r.state.jsonl").exists()


# ---------------------------------------------------------------------------------------------------------------
# Suggestions


def test_suggestions_from_a_fake_captioner_are_batched_and_cached(site, tmp_path, monkeypatch):
    fake = FakeDescriber()
    monkeypatch.setattr(command, "load_describer", lambda checkpoint, beam_size: fake)
    r = run(site.url("/"), "--out", "r.json")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "r.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    by_image = {(f["image_url"] or "none")[:30]: f["suggestion"] for f in report["findings"]}
    red = by_image[site.url("/img/red.png")[:30]]
    # exactly the pipeline's words (without fitted heads it always hedges; the audit adds nothing of its own)
    assert red == {"kind": "caption", "alt": "Might be: a red square.", "hedged": True, "image_kind": "photo",
                   "caption": "A red square.", "confidence": 0.75, "model": "fake-1",
                   # what an author can adopt, and the number the wording was chosen from (uncalibrated here)
                   "suggested_alt": "A red square.", "suggested_confidence": 0.75, "confidence_basis": "raw_caption"}
    assert by_image[site.url("/img/blue.png")[:30]]["alt"] == "Might be: a blue square."
    assert by_image[DATA_PNG[:30]]["alt"] == "Might be: a yellow square."  # a data: URL, decoded in place
    assert by_image[site.url("/img/spacer.gif")[:30]]["kind"] == "decorative"
    assert by_image[site.url("/img/missing.png")[:30]] == {
        "kind": "error", "code": "upstream_status", "message": "the image server answered HTTP 404"}
    assert by_image["none"]["kind"] == "none"  # the inline SVG
    assert fake.calls == [5]  # red (twice on the site), blue, green, yellow, the data: URL: one batch
    assert report["summary"]["suggestions"] == {"caption": 6, "withheld": 0, "decorative": 1, "error": 1, "none": 1,
                                                "pending": 0, "name": 0, "judgement": 0}
    assert report["options"]["model"] == "fake-1"
    html = (tmp_path / "r.json").with_suffix(".html")
    assert run(site.url("/"), "--out", html).exit_code == 0
    assert fake.calls == [5]  # second audit: every caption came from the cache
    assert 'alt="Might be: a red square."' in html.read_text()
    assert 'src="data:image/jpeg;base64,' in html.read_text()  # thumbnails cached beside the captions
    assert check_page(html.read_text(), html.as_uri()) == []


class _FakeService:
    """Answers /readyz and POST /v1/alt-text like the real service, recording how many images each request held."""

    def __init__(self, answer: dict | None = None):
        self.batches: list[int] = []
        self.answer = {"alt": "A thing.", "caption": "A thing.", "confidence": 0.5, "hedged": False,
                       "withheld": False, "cached": False, "model": "svc-model-1", **(answer or {})}
        svc = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802
                self._send(200, {"status": "ready", "model": "svc-model-1"})

            def do_POST(self):  # noqa: N802
                images = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["images"]
                svc.batches.append(len(images))
                self._send(200, {"results": [
                    svc.answer if len(base64.b64decode(i["data"])) > 10
                    else {"error": {"code": "empty", "message": "too small", "status": 422}} for i in images]})

            def log_message(self, *args):
                pass

        self.http = LoopbackHTTP(Handler)
        self.url = self.http.url

    def close(self):
        self.http.close()


def test_service_backend_chunks_of_sixteen():
    svc = _FakeService()
    try:
        backend = ServiceBackend(svc.url)
        assert backend.version == "service:svc-model-1"
        images = [LoadedImage(f"u{i}", None, b"x" * (20 if i != 3 else 5)) for i in range(20)]
        results = backend.describe(images)
        assert svc.batches == [16, 4]
        assert results[0]["alt"] == "A thing." and results[0]["confidence"] == 0.5
        assert results[3]["error"]["code"] == "empty"
    finally:
        svc.close()


def test_audit_through_a_service(site, tmp_path):
    svc = _FakeService()
    try:
        r = run(site.url("/"), "--server", svc.url, "--out", "r.json")
        assert r.exit_code == 0, r.output
        report = json.loads((tmp_path / "r.json").read_text())
        kinds = [f["suggestion"]["kind"] for f in report["findings"]]
        assert kinds.count("caption") == 6 and report["options"]["model"] == "service:svc-model-1"
        assert sum(svc.batches) == 5
    finally:
        svc.close()


def test_a_services_results_are_judged_too(site, tmp_path):
    """The service's result fields include what the image judgements read (kind, text, ...)."""
    svc = _FakeService({"alt": "Appears to say: “Summer sale today only”", "kind": "text",
                        "text": "Summer sale today only"})
    try:
        r = run(site.url("/"), "--server", svc.url, "--out", "r.json", "--fail-on", WCAG_FAILURES)
        assert r.exit_code == 0, r.output  # judgements are never WCAG failures
        report = json.loads((tmp_path / "r.json").read_text())
        judged = [f for f in report["findings"] if f["severity"] == "needs review"]
        rules = [f["rule"] for f in judged]
        assert rules.count("image-of-text") == 6  # each image described (not the spacer, not missing.png)
        assert sorted(f["current_alt"] for f in judged if f["rule"] == "image-name-contradicts-text") == \
            ["DSC_0001.jpg", "image"] and len(rules) == 8
        assert all(f["evidence"] == {"kind": "text", "text": "Summer sale today only"} for f in judged)
        assert sum(svc.batches) == 5  # no image described twice
    finally:
        svc.close()


@pytest.mark.slow  # the shapes_checkpoint fixture trains for a while the first time a session asks for it
def test_suggestions_from_the_tiny_real_model(site, tmp_path, shapes_checkpoint):
    r = run(site.url("/"), "--checkpoint", shapes_checkpoint, "--include", "/(a|b)\\.html", "--out", "r.json")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "r.json").read_text())
    captions = [f["suggestion"] for f in report["findings"] if (f["suggestion"] or {}).get("kind") == "caption"]
    assert len(captions) == 4  # red (twice), blue, green
    assert all(c["alt"].endswith(".") and 0 < c["confidence"] <= 1 for c in captions)
    assert report["options"]["model"] == captions[0]["model"]


def test_images_elsewhere_go_through_the_safe_fetcher(site):
    """Same-origin images come through the crawl session (a private site is the owner's choice); an image on any
    other origin goes through server.netsafe.fetch, which refuses loopback unless the test allow-list names it, and
    robots.txt applies to the site's own images."""
    other = LocalSite()
    try:
        other.routes["/x.png"] = (200, {"Content-Type": "image/png"}, png((1, 2, 3)))
        other.routes["/robots.txt"] = (200, {"Content-Type": "text/plain"}, b"User-agent: *\nDisallow: /private/\n")
        other.routes["/private/y.png"] = other.routes["/x.png"]
        site_session = Site(CrawlConfig(start_url=site.url("/")))
        strict = ImageSource(site_session, [site.root], FetchLimits())
        assert strict.load(site.url("/img/red.png")).image.size == (32, 32)
        with pytest.raises(FetchError) as e:
            strict.load(other.url("/x.png"))
        assert e.value.code == "blocked_address" and other.count("/x.png") == 0
        allowed = ImageSource(site_session, [site.root],
                              FetchLimits(test_allow_loopback=(f"127.0.0.1:{other.port}",)))
        assert allowed.load(other.url("/x.png")).data == png((1, 2, 3))
        own = ImageSource(Site(CrawlConfig(start_url=other.url("/"))), [other.root], FetchLimits())
        with pytest.raises(FetchError) as e:
            own.load(other.url("/private/y.png"))
        assert e.value.code == "robots_disallowed" and other.count("/private/y.png") == 0
        with pytest.raises(FetchError) as e:
            strict.load("data:image/png;base64,@@@")
        assert e.value.code == "invalid_data"
        with pytest.raises(FetchError) as e:
            strict.load(site.url("/"))
        assert e.value.code == "unsupported_format"
    finally:
        other.close()


def test_the_audit_never_reads_the_services_loopback_test_switch(monkeypatch):
    """ALT_TEXT_TEST_ALLOW_LOOPBACK (with testing mode) opens loopback origins to the service's fetcher in tests;
    the audit's fetcher for images on other origins stays closed whatever the environment says."""
    from server.audit.crawl import CrawlConfig, Crawler

    monkeypatch.setenv("ALT_TEXT_TEST_ALLOW_LOOPBACK", "127.0.0.1:8080")
    monkeypatch.setenv("ALT_TEXT_TESTING", "1")
    monkeypatch.setattr(command, "load_describer", lambda checkpoint, beam_size: FakeDescriber())
    suggester = command._suggester(Crawler(CrawlConfig(start_url="http://127.0.0.1:1/")), None, None, None, 3, 1)
    assert suggester.source.limits.test_allow_loopback == ()


def test_html_report_is_self_contained_and_readable_by_others(site, tmp_path, monkeypatch):
    """The images the audit fetched to describe are embedded as small JPEG data: URLs (mailable, archivable); the
    report files get the user's usual permissions (0666 less the umask), not mkstemp's 0600."""
    import os
    import stat

    from PIL import Image

    fake = FakeDescriber()
    monkeypatch.setattr(command, "load_describer", lambda checkpoint, beam_size: fake)
    old = os.umask(0o022)
    try:
        r = run(site.url("/"), "--out", "r.html", "--out", "r.json")
    finally:
        os.umask(old)
    assert r.exit_code == 0, r.output
    for name in ("r.html", "r.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
    soup = BeautifulSoup((tmp_path / "r.html").read_text(), "html.parser")
    srcs = {t["src"] for t in soup.find_all("img")}  # missing.png (404) and the spacer: no preview, no link
    assert srcs and all(s.startswith("data:image/jpeg;base64,") for s in srcs)
    assert len(srcs) == 5  # red, blue, green, yellow, the data: URL image (spacer: decorative, never fetched)
    im = Image.open(io.BytesIO(base64.b64decode(next(iter(srcs)).partition(",")[2])))
    assert im.format == "JPEG" and max(im.size) <= 96
    assert "img-src http: https: data:" in soup.find("meta", attrs={"http-equiv": "Content-Security-Policy"})["content"]


def test_no_suggest_fetches_no_image(site, tmp_path):
    """--no-suggest stays a crawl: no image is fetched (for thumbnails or anything else), so no extra work."""
    before = len(site.log)
    assert run(site.url("/"), "--no-suggest", "--out", "r.html").exit_code == 0
    assert not [p for _, p in site.log[before:] if p.startswith("/img/")]
    soup = BeautifulSoup((tmp_path / "r.html").read_text(), "html.parser")
    assert not soup.find_all("img")  # and the report links to none: it loads nothing from anywhere


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_terminal_and_quiet_otherwise(site, tmp_path, monkeypatch):
    """On a terminal: pages done of those known, URLs queued, images, findings, the rate; nothing with --quiet or
    when stderr is not a terminal."""
    from server.audit.crawl import CrawlState, Page

    term = _Terminal()
    monkeypatch.setattr(command.sys, "stderr", term)
    st = CrawlState(site.url("/"), [site.root])
    progress = command.Progress(200, st)
    st.pages.append(Page(url=site.url("/"), depth=0, referrer=None, images=3, findings=2))
    st.frontier.extend([(site.url("/a.html"), 1, None), (site.url("/b.html"), 1, None)])
    progress.bar.mininterval = 0
    progress.page(st.pages[0], st)
    progress.bar.refresh()
    out = term.getvalue()
    assert "crawling" in out and "1/3" in out and "queued=2" in out and "findings=2" in out and "page/s" in out
    progress.close()
    assert not command.Progress(200, st, quiet=True).enabled
    monkeypatch.setattr(command.sys, "stderr", io.StringIO())
    assert not command.Progress(200, st).enabled
    r = run(site.url("/"), "--no-suggest", "-q")
    assert r.exit_code == 0 and "Audited 5 page(s)" in r.stdout
