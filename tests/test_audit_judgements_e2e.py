"""The image judgements in ``alt-text audit``, end to end: a local site with real images (a page of text, a sale
banner and a logotype drawn with a real font, an icon, a photo), the bundled checkpoint and real Tesseract. Each
judgement fires where it should and stays quiet on the correct control beside it; the reports carry them with
their evidence; ``--fail-on`` does not count them; ``--no-suggest`` neither collects nor reports them."""
from __future__ import annotations

import csv
import io
import json
from contextlib import contextmanager
from pathlib import Path

import jsonschema
import pytest
from PIL import Image
from test_audit_cli import run
from test_audit_crawl import LocalSite, served
from test_audit_judge import _eval_judge, _logotype
from test_audit_sarif import _validate

from server.audit.crawl import CrawlConfig, Crawler
from server.audit.report import SCHEMA
from server.audit.rules import RuleOptions, check_page

REPO = Path(__file__).resolve().parent.parent
JUDGED = ("image-informative-hidden", "image-name-contradicts-text", "image-of-text")
SALE = "Spring sale 20% off everything"


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


# Each case: (page, the element's id, the findings it must have). The ids make the selectors.
CASES = {
    # A page of text marked decorative: informative and an image of text.
    ("/text.html", "fhs-hidden"): {"image-informative-hidden", "image-of-text"},
    # The same image, hidden, with its words in the figure caption beside it: hiding it is right; still 1.4.5.
    ("/text.html", "fhs-captioned"): {"image-of-text"},
    # A photo, named: nothing.
    ("/text.html", "cat-named"): set(),
    # A photo marked decorative: nothing (photos are never judged).
    ("/text.html", "cat-hidden"): set(),
    # A banner named "banner": its name says nothing of its text (and the markup rule calls it a placeholder).
    ("/names.html", "sale-banner"): {"image-name-contradicts-text", "alt-placeholder"},
    # The banner named by its text: nothing.
    ("/names.html", "sale-named"): set(),
    # A logotype reading W3C named "ERCIM logo": contradicted; named "W3C logo": not.
    ("/names.html", "w3c-ercim"): {"image-name-contradicts-text"},
    ("/names.html", "w3c-named"): set(),
    # An icon marked decorative, the only content of a link: link-name, with the judgement attached to it.
    ("/controls.html", "icon-link"): {"link-name"},
    # The banner marked decorative, alone in a link: link-name, with the judgement (and the banner's text).
    ("/controls.html", "sale-link"): {"link-name"},
    # The icon beside the link's own text: nothing.
    ("/controls.html", "icon-about"): set(),
    # The banner hidden with aria-hidden on an ancestor: informative.
    ("/controls.html", "sale-aria-hidden"): {"image-informative-hidden"},
    # The banner in an element that is not shown at all: nothing.
    ("/controls.html", "sale-not-shown"): set(),
}


def build_site(site: LocalSite) -> LocalSite:
    site.routes["/robots.txt"] = (200, {"Content-Type": "text/plain"}, b"User-agent: *\nAllow: /\n")
    images = {"fhs.png": (REPO / "tests/data/kinds/text.png").read_bytes(),
              "cat.jpg": (REPO / "tests/data/cat.jpg").read_bytes(),
              "icon.png": (REPO / "tests/data/kinds/icon.png").read_bytes(),
              "sale.png": _png(_eval_judge().make_banner(SALE, seed=0)), "w3c.png": _png(_logotype("W3C"))}
    for name, data in images.items():
        site.routes[f"/img/{name}"] = (200, {"Content-Type": "image/jpeg" if name.endswith("jpg") else "image/png"},
                                       data)
    site.page("/", '<h1>Home</h1><a href="/text.html">Text</a> <a href="/names.html">Names</a> '
                   '<a href="/controls.html">Controls</a>')
    site.page("/text.html",
              '<p><img id="fhs-hidden" src="/img/fhs.png" alt=""></p>'
              '<figure><img id="fhs-captioned" src="/img/fhs.png" alt="">'
              "<figcaption>Filesystem Hierarchy Standard</figcaption></figure>"
              '<p><img id="cat-named" src="/img/cat.jpg" alt="A cat lying on a blanket"></p>'
              '<p><img id="cat-hidden" src="/img/cat.jpg" alt=""></p>')
    site.page("/names.html",
              '<p><img id="sale-banner" src="/img/sale.png" alt="banner"></p>'
              '<p><img id="sale-named" src="/img/sale.png" alt="Spring sale: 20% off everything"></p>'
              '<p><img id="w3c-ercim" src="/img/w3c.png" alt="ERCIM logo"></p>'
              '<p><img id="w3c-named" src="/img/w3c.png" alt="W3C logo"></p>')
    site.page("/controls.html",
              '<nav><a id="icon-link" href="/text.html"><img src="/img/icon.png" alt=""></a> '
              '<a id="sale-link" href="/names.html"><img src="/img/sale.png" alt=""></a> '
              '<a href="/"><img id="icon-about" src="/img/icon.png" alt=""> About us</a></nav>'
              '<p><span aria-hidden="true"><img id="sale-aria-hidden" src="/img/sale.png"></span></p>'
              '<div style="display: none"><img id="sale-not-shown" src="/img/sale.png" alt=""></div>')
    return site


@pytest.fixture(scope="module")
def site():
    yield from served(build_site)


@contextmanager
def real_pipeline(tmp: Path):
    """Audits in ``tmp`` with the real pipeline and a cache of their own there; skips without Tesseract."""
    from server.describe import Describer

    if not Describer.load().ocr_available:
        pytest.skip("Tesseract is not installed")
    mp = pytest.MonkeyPatch()
    mp.setenv("ALT_TEXT_CACHE_PATH", str(tmp / "cache.sqlite3"))
    mp.delenv("ALT_TEXT_CACHE", raising=False)
    mp.chdir(tmp)
    try:
        yield tmp
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def audited(site, tmp_path_factory):
    """One audit with the real pipeline, in every format; the describer must have Tesseract."""
    tmp = tmp_path_factory.mktemp("judged")
    with real_pipeline(tmp):
        outs = {ext: tmp / f"r.{ext}" for ext in ("json", "csv", "sarif", "html")}
        r = run(site.url("/"), *[a for p in outs.values() for a in ("--out", p)])
        assert r.exit_code == 0, r.output
        report = json.loads(outs["json"].read_text())
        yield {"result": r, "report": report, "files": outs, "site": site, "tmp": tmp}


def _by_element(report: dict, site: LocalSite) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for f in report["findings"]:
        key = (f["page_url"].removeprefix(site.root), f["selector"].split(" > ")[0].removeprefix("#"))
        out.setdefault(key, []).append(f)
    return out


def test_each_judgement_fires_on_its_case_and_not_on_its_control(audited):
    report, site = audited["report"], audited["site"]
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    found = _by_element(report, site)
    for key, rules in CASES.items():
        assert {f["rule"] for f in found.get(key, [])} == rules, key
    # No judgement anywhere else (the home page, other elements).
    assert {k for k, fs in found.items() if any(f["rule"] in JUDGED for f in fs)} <= set(CASES)


def test_a_judgement_carries_its_evidence_act_rule_and_suggestion(audited):
    found = _by_element(audited["report"], audited["site"])
    hidden, text = sorted(found[("/text.html", "fhs-hidden")], key=lambda f: f["rule"])
    for f in (hidden, text):
        assert f["severity"] == "needs review" and f["evidence"]["kind"] == "text"
        assert "Filesystem Hierarchy Standard" in f["evidence"]["text"]
        assert f["suggestion"]["kind"] == "judgement" and f["suggestion"]["confidence_basis"] == "text"
        assert "Filesystem Hierarchy Standard" in f["suggestion"]["suggested_alt"]
        assert f["current_alt"] == "" and f["image_url"].endswith("/img/fhs.png")
    assert hidden["act"] == "e88epe" and hidden["wcag"].startswith("WCAG 2.2 SC 1.1.1")
    assert text["act"] == "0va7u6" and text["wcag"].startswith("WCAG 2.2 SC 1.4.5")
    assert "real text" in text["message"].lower() and "real text" in text["suggestion"]["message"].lower()

    (banner,) = [f for f in found[("/names.html", "sale-banner")] if f["rule"] == "image-name-contradicts-text"]
    assert banner["act"] == "qt1vmo" and banner["current_alt"] == "banner"
    assert banner["suggestion"]["suggested_alt"] == banner["evidence"]["text"] and "sale" in banner["evidence"][
        "text"].lower()
    (w3c,) = found[("/names.html", "w3c-ercim")]
    assert w3c["evidence"]["text"] == "W3C" and "W3C" in w3c["suggestion"]["suggested_alt"]

    (aria,) = found[("/controls.html", "sale-aria-hidden")]
    assert aria["current_alt"] is None and "sale" in aria["suggestion"]["suggested_alt"].lower()


def test_the_control_case_is_attached_to_the_controls_own_finding(audited):
    found = _by_element(audited["report"], audited["site"])
    (icon,) = found[("/controls.html", "icon-link")]
    assert icon["icon"] == "img-decorative" and icon["severity"] == "serious"  # the markup rule's own verdict
    assert icon["judgement"]["rule"] == "image-informative-hidden" and icon["judgement"]["act"] == "e88epe"
    assert icon["evidence"]["kind"] == "icon" and "icon" in icon["judgement"]["message"]
    (sale,) = found[("/controls.html", "sale-link")]
    assert sale["judgement"]["suggested_alt"] == sale["evidence"]["text"]
    # The model cannot name a banner as an icon; the banner's own text does.
    assert sale["suggestion"]["kind"] == "name" and sale["suggestion"]["name"] == sale["evidence"]["text"]


def test_judgements_are_to_review_never_wcag_failures(audited, site):
    s = audited["report"]["summary"]
    review = s["by_severity"]["needs review"]
    assert review == sum(s["by_rule"][r] for r in JUDGED) == 6
    assert s["wcag_failures"] == s["by_severity"]["critical"] + s["by_severity"]["serious"]
    assert "to review: 6 image judgement(s)" in audited["result"].stdout
    # Served from the cache now: the gate counts WCAG failures only, unless told to count everything.
    assert run(site.url("/"), "--fail-on", s["wcag_failures"]).exit_code == 0
    r = run(site.url("/"), "--fail-on", s["findings"] - 1, "--fail-scope", "all")
    assert r.exit_code == 3 and f"{s['findings']} findings" in r.stderr


def test_csv_sarif_and_html_show_the_judgements(audited):
    report, files = audited["report"], audited["files"]
    rows = list(csv.DictReader(files["csv"].open(newline="", encoding="utf-8")))
    assert len(rows) == len(report["findings"])
    judged = [r for r in rows if r["rule"] in JUDGED]
    assert len(judged) == 6 and all(r["severity"] == "needs review" and r["act"] for r in judged)
    assert all(json.loads(r["evidence"])["kind"] for r in judged)
    assert all(r["suggested_alt"] for r in judged)
    attached = [r for r in rows if r["judgement"]]
    assert {r["rule"] for r in attached} == {"link-name"} and len(attached) == 2

    log = json.loads(files["sarif"].read_text(encoding="utf-8"))
    _validate(log)
    results = log["runs"][0]["results"]
    notes = [r for r in results if r["ruleId"] in JUDGED]
    assert len(notes) == 6 and {r["level"] for r in notes} == {"note"}
    assert all(r["properties"]["evidence"]["kind"] and r["properties"]["act"] for r in notes)
    assert all(r["properties"]["suggestionKind"] == "judgement" for r in notes)

    page = files["html"].read_text(encoding="utf-8")
    assert check_page(page, files["html"].as_uri()) == []  # the report passes its own audit
    assert page.count("(ACT rule ") == 6 and "To review:" in page and "Evidence: kind text; text read" in page
    assert 'alt="Filesystem Hierarchy Standard"' in page  # the thumbnail says what the image says


def test_no_suggest_neither_collects_nor_reports_judgements(audited, site, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run(site.url("/"), "--no-suggest", "--out", tmp_path / "plain.json")
    assert r.exit_code == 0, r.output
    plain = json.loads((tmp_path / "plain.json").read_text())
    assert not any(f["rule"] in JUDGED or "judgement" in f or "evidence" in f for f in plain["findings"])
    judged = [(f["page_url"], f["rule"], f["selector"]) for f in audited["report"]["findings"]
              if f["rule"] not in JUDGED]
    assert [(f["page_url"], f["rule"], f["selector"]) for f in plain["findings"]] == judged  # the same markup
    assert plain["summary"]["by_severity"]["needs review"] == 0
    state = Crawler(CrawlConfig(start_url=site.url("/"))).run()
    assert len(state.image_contexts) == 0 and len(state.findings) == len(judged)
    with_contexts = Crawler(CrawlConfig(start_url=site.url("/"), rule_options=RuleOptions(judge_images=True))).run()
    assert list(with_contexts.findings) == list(state.findings)
    assert len(with_contexts.image_contexts) == 12  # the 13 cases but the one not shown
