"""The audit's reports: JSON against its schema, CSV columns and formula escaping, and an HTML report that escapes
hostile page content and passes the audit's own rules."""
from __future__ import annotations

import csv
import io
import json

import jsonschema
import pytest
from bs4 import BeautifulSoup

from server.audit.crawl import CrawlState, Page
from server.audit.report import (CSV_COLUMNS, SCHEMA, build_report, count_for_gate, safe_url, thumbnail_alts,
                                 to_csv, to_html, to_json, write_report)
from server.audit.rules import check_page

SITE = "https://example.com/"
XSS = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
EVIL_PAGE = f"https://example.com/{XSS}"

# A page full of hostile content, run through the real rules so that findings carry real snippets.
EVIL_HTML = f"""<!doctype html><html><body>
<img src="javascript:alert(3)">
<img src="/cat.png" alt='{XSS}.png'>
<img src="https://cdn.example.com/a.png?&quot;onerror=&quot;alert(4)" alt="image">
<img src="data:image/png;base64,iVBORw0KGgo=">
<img src="/dog.png">
<img src="/spacer.gif" width="1" height="1">
<svg role="img"><script>alert(5)</script></svg>
<img src="/formula.png" alt="=HYPERLINK(&quot;http://evil&quot;) IMG_0001.jpg">
</body></html>"""

def _described(alt, confidence, hedged=False):
    return {"kind": "caption", "alt": alt, "confidence": confidence, "model": "fake-1", "image_kind": "photo",
            "caption": alt, "hedged": hedged}


CAPTIONS = {
    "https://example.com/cat.png": _described("</textarea><script>alert(6)</script> A cat", 0.81),
    "https://example.com/dog.png": _described("Might be: a dog on a sofa.", 0.3, hedged=True),
    'https://cdn.example.com/a.png?"onerror="alert(4)': _described("Appears to be: a dog on a sofa.", 0.9),
}


def _state(findings, pages=None) -> CrawlState:
    st = CrawlState(start_url=SITE, origins=["https://example.com"])
    st.pages = pages or [Page(url=EVIL_PAGE, depth=0, referrer=None, images=8, findings=len(findings)),
                         Page(url=SITE + "gone", depth=1, referrer=EVIL_PAGE, status="http_error", http_status=404,
                              error="HTTP 404"),
                         Page(url=SITE + "doc.pdf", depth=1, referrer=SITE, status="not_html", http_status=200,
                              content_type="application/pdf")]
    st.findings = findings
    st.site_errors = [{"url": SITE + "sitemap.xml", "kind": "sitemap", "message": "not well-formed XML <b>"}]
    st.skipped = {"off_site": 2, "excluded": 0, "robots": 1, "depth_limit": 0}
    st.skipped_urls = [{"url": "https://other.example/" + XSS, "reason": "off_site", "referrer": EVIL_PAGE}]
    return st


def _suggestion(f: dict) -> dict | None:
    if f["decorative_candidate"]:
        return {"kind": "decorative", "alt": "", "message": 'Probably decorative: use alt=""'}
    if f["image_url"] in CAPTIONS:
        return CAPTIONS[f["image_url"]]
    if not f["image_url"]:
        return {"kind": "none", "message": "No image file to describe."}
    if f["image_url"].startswith("data:"):
        return None
    return {"kind": "error", "code": "upstream_status", "message": "the image server answered HTTP 404 <i>"}


@pytest.fixture(scope="module")
def report():
    from dataclasses import asdict

    findings = [asdict(f) for f in check_page(EVIL_HTML, EVIL_PAGE)]
    assert len(findings) == 8
    st = _state(findings)
    return build_report(st, [_suggestion(f) for f in findings], options={"max_pages": 10}, complete=True,
                        user_agent="ua", version="0.1.0", finished_at=st.started_at + 5)


def test_json_report_matches_schema(report):
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    validator.validate(json.loads(to_json(report)))
    s = report["summary"]
    assert s["findings"] == len(report["findings"]) and s["urls_fetched"] == 3 and s["pages_audited"] == 1
    assert s["crawl_errors"] == 2  # the 404 and the sitemap
    assert s["wcag_failures"] == s["by_severity"]["critical"] + s["by_severity"]["serious"]
    assert sum(s["by_rule"].values()) == s["findings"] == sum(s["by_severity"].values())
    assert s["by_page"] == [{"url": EVIL_PAGE, "findings": s["findings"], "wcag_failures": s["wcag_failures"]}]
    assert s["suggestions"]["caption"] == 3 and s["suggestions"]["decorative"] == 1 and s["suggestions"]["pending"] == 1
    assert [f["id"] for f in report["findings"]] == [f"F{i}" for i in range(1, s["findings"] + 1)]
    assert count_for_gate(report, "wcag") == s["wcag_failures"] and count_for_gate(report, "all") == s["findings"]


def test_schema_is_not_vacuous(report):
    validator = jsonschema.Draft202012Validator(SCHEMA)
    broken = json.loads(to_json(report))
    broken["findings"][0]["suggestion"] = {"kind": "caption", "alt": "x", "confidence": 3, "model": "m"}
    assert not validator.is_valid(broken)
    broken = json.loads(to_json(report))
    del broken["summary"]["by_rule"]["image-alt"]
    assert not validator.is_valid(broken)
    broken = json.loads(to_json(report))
    broken["pages"][0]["status"] = "fine"
    assert not validator.is_valid(broken)


def test_csv_has_one_row_per_finding_and_defuses_formulas(report):
    rows = list(csv.reader(io.StringIO(to_csv(report))))
    assert tuple(rows[0]) == CSV_COLUMNS
    body = [dict(zip(CSV_COLUMNS, r)) for r in rows[1:]]
    assert [r["id"] for r in body] == [f["id"] for f in report["findings"]]
    formula = next(r for r in body if r["image_url"].endswith("/formula.png"))
    assert formula["current_alt"].startswith("'=HYPERLINK")
    cat = next(r for r in body if r["image_url"] == "https://example.com/cat.png")
    assert cat["suggestion"] == "caption" and cat["confidence"] == "0.81" and "alert(6)" in cat["suggested_alt"]
    spacer = next(r for r in body if r["image_url"].endswith("/spacer.gif"))
    assert spacer["suggestion"] == "decorative" and spacer["decorative_candidate"] == "true"
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r)


def _soup(text: str) -> BeautifulSoup:
    return BeautifulSoup(text, "lxml")


def test_html_report_passes_its_own_audit(report):
    page = to_html(report)
    assert check_page(page, "file:///tmp/report.html") == []
    soup = _soup(page)
    assert soup.html["lang"] == "en" and soup.title.get_text().startswith("Image accessibility audit")
    skip = soup.body.find("a")
    assert skip["href"] == "#main" and soup.find(id="main").name == "main"
    assert soup.find("h1") and soup.find_all("h2") and soup.find_all("h3")
    for table in soup.find_all("table"):
        assert table.caption is not None
        assert all(th.get("scope") in ("col", "row") for th in table.find_all("th"))
    buttons = soup.find_all("button")
    assert buttons and all(b["aria-label"].startswith(b.get_text()) for b in buttons)  # label in name
    thumbs = soup.find_all("img")
    assert len({t["alt"] for t in thumbs}) == len({t["src"] for t in thumbs})


def test_html_report_escapes_hostile_content(report):
    page = to_html(report)
    soup = _soup(page)
    scripts = soup.find_all("script")
    assert len(scripts) == 1 and "alert" not in scripts[0].get_text()
    for el in soup.find_all(True):
        assert not any(a.lower().startswith("on") for a in el.attrs), el
    for el in soup.find_all(href=True):
        assert el["href"].startswith(("#", "https://")), el["href"]
    for el in soup.find_all(src=True):
        assert el["src"].startswith("https://"), el["src"]
    assert "javascript:" not in " ".join(str(v) for el in soup.find_all(True) for v in el.attrs.values())
    text = soup.get_text()
    assert "<script>alert(1)</script>" in text and "</textarea><script>alert(6)</script> A cat" in text
    assert "<svg role=\"img\"><script>alert(5)</script></svg>" in text  # the snippet, shown as text
    csp = soup.find("meta", attrs={"http-equiv": "Content-Security-Policy"})["content"]
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "unsafe-inline" not in csp


def test_html_report_shows_suggestions(report):
    soup = _soup(to_html(report))
    cat = soup.find("img", src="https://example.com/cat.png")
    assert cat["alt"] == "</textarea><script>alert(6)</script> A cat"  # the model's description, as text
    copy = [b["data-copy"] for b in soup.find_all("button")]
    # what an author can adopt: the description without the listener's hedge
    assert 'alt=""' in copy and "A dog on a sofa." in copy and not any("Appears" in c for c in copy)
    low = soup.find("img", src="https://example.com/dog.png")
    assert low["alt"] == "Might be: a dog on a sofa."  # the pipeline's hedge, once: nothing added by the report
    assert "unsure, check it" in soup.get_text()


def test_thumbnail_alts_are_unique_and_meaningful():
    f = {"current_alt": None, "decorative_candidate": False, "suggestion": None}

    def caption(text):
        return {"kind": "caption", "alt": text, "confidence": .9}

    findings = [
        {**f, "image_url": "https://h/a.png", "suggestion": caption("A red square.")},
        {**f, "image_url": "https://h/b.png", "suggestion": caption("a red square")},
        {**f, "image_url": "https://h/a.png", "suggestion": caption("A red square.")},
        {**f, "image_url": "https://h/IMG_1234.jpg"},
        {**f, "image_url": "https://h/c.png", "current_alt": "Our team at the 2024 summit"},
        {**f, "image_url": "https://h/d.png", "current_alt": "image", "suggestion": caption("A.")},
        {**f, "image_url": "https://h/e.gif", "suggestion": {"kind": "decorative", "alt": "", "message": "m"}},
        {**f, "image_url": "javascript:alert(1)"},
    ]
    alts = thumbnail_alts(findings)
    assert set(alts) == {"https://h/a.png", "https://h/b.png", "https://h/IMG_1234.jpg", "https://h/c.png",
                         "https://h/d.png", "https://h/e.gif"}
    assert alts["https://h/a.png"] != alts["https://h/b.png"]
    assert alts["https://h/c.png"] == "Our team at the 2024 summit"
    assert alts["https://h/IMG_1234.jpg"] == "Not described yet: IMG_1234.jpg from h"
    assert alts["https://h/d.png"] == "Not described yet: d.png from h"  # "A." and "image" say nothing
    assert alts["https://h/e.gif"] == "Probably decorative: e.gif from h"
    html = "".join(f'<p>x</p><img src="{u}" alt="{a}">' for u, a in alts.items())
    assert check_page(html, "https://h/") == []


def test_partial_and_empty_reports(tmp_path):
    st = _state([], pages=[Page(url=SITE, depth=0, referrer=None)])
    st.site_errors, st.skipped_urls = [], []
    rep = build_report(st, None, options={}, complete=False, user_agent="ua", version="0.1.0",
                       finished_at=st.started_at)
    jsonschema.Draft202012Validator(SCHEMA).validate(rep)
    page = to_html(rep)
    assert "Partial report" in page and "No findings" in page
    assert check_page(page, "file:///r.html") == []
    for name in ("r.json", "r.csv", "r.html", "r.HTM"):
        write_report(rep, tmp_path / name)
        assert (tmp_path / name).stat().st_size > 0
    with pytest.raises(ValueError, match="extension"):
        write_report(rep, tmp_path / "r.txt")
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("url, ok", [("https://h/x.png", True), ("HTTP://h/x", True), ("javascript:alert(1)", False),
                                     ("data:image/png;base64,AA", False), ("https://h/a b", False),
                                     ('https://h/"onerror', False), ("//h/x", False), (None, False)])
def test_safe_url(url, ok):
    assert safe_url(url) == (url if ok else None)


# ---------------------------------------------------------------------------------------------------------------
# The image judgements in the report (server.audit.judging)

def _judged_report():
    from dataclasses import asdict

    from server.audit.judging import Judgements
    from server.audit.rules import RuleOptions, audit_page

    pages = {SITE + "one": '<img src="/sale.png" alt="banner"><a href="/"><img src="/icon.png" alt=""></a>',
             SITE + "two": '<img src="/cat.png" alt="A cat">',
             SITE + "three": '<img src="/sale.png" alt="">'}
    findings, contexts = [], []
    for url, html in pages.items():
        check = audit_page(html, url, RuleOptions(judge_images=True))
        findings += [asdict(f) for f in check.findings]
        contexts += [asdict(c) for c in check.images_to_judge]
    evidence = {SITE + "sale.png": {"kind": "text", "text": "Spring sale 20% off everything"},
                SITE + "icon.png": {"kind": "icon", "meaning": {"id": "home", "label": "Home", "p": 0.9},
                                    "control_name": "Home"}}
    judgements = Judgements(evidence.get, "fake-1").judge_images(contexts)
    st = _state(findings, pages=[Page(url=u, depth=0, referrer=None) for u in pages])
    suggestions = [{"kind": "withheld", "alt": None, "reason": "no_control_name", "message": "not sure",
                    "confidence": 0.2, "model": "fake-1", "image_kind": "icon", "caption": ""}
                   if f["rule"] == "link-name" else None for f in findings]
    return build_report(st, suggestions, options={}, complete=True, user_agent="ua", version="0",
                        finished_at=st.started_at, judgements=judgements), findings


def test_judgements_follow_their_pages_findings_and_attach_to_controls():
    report, crawl = _judged_report()
    jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(to_json(report)))
    rows = [(f["id"], f["page_url"].removeprefix(SITE), f["rule"]) for f in report["findings"]]
    assert rows == [("F1", "one", "alt-placeholder"), ("F2", "one", "link-name"),
                    ("F3", "one", "image-name-contradicts-text"), ("F4", "one", "image-of-text"),
                    ("F5", "three", "image-informative-hidden"), ("F6", "three", "image-of-text")]
    assert len(report["findings"]) == len(rows) == len(crawl) + 4
    s = report["summary"]
    assert s["by_severity"]["needs review"] == 4 and s["wcag_failures"] == 1  # link-name only
    assert s["suggestions"]["judgement"] == 4 and count_for_gate(report, "wcag") == 1
    link = report["findings"][1]
    assert link["judgement"]["rule"] == "image-informative-hidden" and link["evidence"]["kind"] == "icon"
    assert link["judgement"]["suggested_alt"] == "Home" and link["judgement"]["confidence_basis"] == "control_name"
    # The model was not sure of a name; the icon's meaning gives one.
    assert link["suggestion"]["kind"] == "name" and link["suggestion"]["name"] == "Home"
    assert link["suggestion"]["confidence"] == 0.9
    hidden = report["findings"][4]
    assert hidden["suggestion"] == {"kind": "judgement", "suggested_alt": "Spring sale 20% off everything",
                                    "suggested_confidence": None, "confidence_basis": "text",
                                    "message": hidden["suggestion"]["message"], "image_kind": "text",
                                    "model": "fake-1"}
    # The icon's own hidden judgement is on the link's finding, not a second finding.
    assert not any(f["rule"] == "image-informative-hidden" and f["page_url"].endswith("one")
                   for f in report["findings"])


def test_judgements_in_csv_and_html():
    report, _ = _judged_report()
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 6
    assert [r["act"] for r in rows] == ["", "e88epe", "qt1vmo", "0va7u6", "e88epe", "0va7u6"]
    assert json.loads(rows[2]["evidence"]) == {"kind": "text", "text": "Spring sale 20% off everything"}
    assert rows[2]["suggested_alt"] == "Spring sale 20% off everything" and rows[2]["confidence_basis"] == "text"
    assert rows[1]["judgement"].startswith("Image is hidden from screen readers")
    page = to_html(report)
    assert check_page(page, "file:///report.html") == []
    assert "needs review" in page and "To review:" in page and "(ACT rule qt1vmo)" in page
    assert "Evidence: kind icon; icon meaning Home (90%); name for a control Home" in page


def test_a_report_without_judgements_is_as_before():
    _, crawl = _judged_report()
    plain = build_report(_state(crawl), None, options={}, complete=True, user_agent="ua", version="0",
                         finished_at=0)
    assert [f["rule"] for f in plain["findings"]] == [f["rule"] for f in crawl]
    assert not any("judgement" in f or "evidence" in f for f in plain["findings"])
    assert plain["summary"]["by_severity"]["needs review"] == 0
