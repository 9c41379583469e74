"""What an author can adopt (server.audit.adopt): the description without the listener's hedge, the number it rests
on, and one answer in the JSON, CSV, HTML and SARIF reports; quotes never nest."""
from __future__ import annotations

import csv
import io
import json

import jsonschema
import pytest
from bs4 import BeautifulSoup

from server.audit.adopt import adoptable, author_alt
from server.audit.crawl import CrawlState, Page
from server.audit.report import SCHEMA, basis_note, build_report, quoted, to_csv, to_html, to_json, to_sarif
from server.audit.suggest import _caption_suggestion, finding_suggestion


def result(alt, kind="photo", caption="", text=None, confidence=0.4, raw=0.3, **kw):
    return {"alt": alt, "kind": kind, "caption": caption, "text": text, "confidence": confidence,
            "raw_confidence": raw, "hedged": alt is not None and alt.startswith("Might"), "withheld": alt is None,
            "reason": None if alt else "low_confidence", **kw}


CASES = [
    # (pipeline result, adopted text, its number, what the number is)
    (result("Appears to be: a dog on a beach.", caption="A dog on a beach.", confidence=0.4), "A dog on a beach.",
     0.4, "caption"),
    (result("Might be: a dog on a beach.", caption="a dog on a beach", confidence=0.62, raw=0.62),
     "A dog on a beach.", 0.62, "raw_caption"),
    (result("Might be: a cat.", caption="A tabby on a rug.", confidence=0.2,
            concepts=[{"word": "cat", "label": "tabby cat", "p": 0.91}]), "A cat.", 0.91, "concept"),
    (result("Appears to say: “Summer sale”", kind="text", text="Summer sale"), "Summer sale", None, "text"),
    (result("Icon: Search.", kind="icon", meaning={"id": "search", "label": "Search", "p": 0.97},
            control_name="Search"), "Search icon", 0.97, "meaning"),
    (result("Logo: GitHub.", kind="logo", brand={"id": "github", "name": "GitHub", "p": 0.88},
            control_name="GitHub"), "GitHub logo", 0.88, "brand"),
    (result("Bar chart: “Sales by region”", kind="chart", text="Sales by region",
            chart_type={"id": "bar", "label": "Bar chart", "p": 0.7}), "Bar chart: Sales by region", 0.7,
     "chart_type"),
    (result("Screenshot: “Settings”", kind="screenshot", text="Settings"), "Screenshot: Settings", None, "text"),
    (result("Appears to be: a shop front. Appears to say: “Open”", caption="A shop front.", text="Open",
            confidence=0.5), "A shop front. Text: Open", 0.5, "caption"),
]


@pytest.mark.parametrize("res,text,p,basis", CASES)
def test_author_alt_drops_the_hedge_and_keeps_the_number_the_wording_came_from(res, text, p, basis):
    assert author_alt(res) == {"text": text, "confidence": p, "basis": basis}
    s = _caption_suggestion(res, "m")
    assert s["kind"] == "caption" and s["alt"] == res["alt"]  # the listener's words stay in the report
    assert (s["suggested_alt"], s["suggested_confidence"], s["confidence_basis"]) == (text, p, basis)
    assert adoptable(s) == {"text": text, "confidence": p, "basis": basis}


def test_nothing_to_adopt_when_withheld_or_only_the_kind():
    assert author_alt(result(None)) is None
    assert _caption_suggestion(result(None), "m")["kind"] == "withheld"
    s = _caption_suggestion(result("Illustration.", kind="illustration"), "m")
    assert s["kind"] == "caption" and s["suggested_alt"] is None and adoptable(s) is None


def test_a_control_name_carries_the_meaning_heads_number():
    described = _caption_suggestion(CASES[4][0], "m")
    s = finding_suggestion({"icon": "img", "rule": "link-name"}, described)
    assert s["kind"] == "name" and s["name"] == "Search" and s["confidence"] == 0.97
    assert adoptable(s) == {"text": "Search", "confidence": 0.97, "basis": "control_name"}


def test_old_reports_suggestions_are_unhedged_too():
    old = {"kind": "caption", "alt": "Appears to say: “Summer sale”", "confidence": 0.5, "model": "m",
           "image_kind": "text", "caption": "", "hedged": False}
    assert adoptable(old)["text"] == "Summer sale"


def test_quotes_never_nest_and_the_number_is_labelled():
    assert quoted("a cat") == "“a cat”"
    assert quoted("He said “hi”") == "He said “hi”"
    assert basis_note({"confidence": 0.62, "basis": "caption"}) == "caption confidence 62%"
    assert basis_note({"confidence": None, "basis": "text"}) == "text read from the image"


def _report():
    st = CrawlState(start_url="https://example.com/", origins=["https://example.com"])
    finding = {"page_url": "https://example.com/", "rule": "image-alt", "wcag": "1.1.1", "severity": "critical",
               "selector": "img", "snippet": "<img>", "message": "no alt", "current_alt": None,
               "decorative_candidate": False, "icon": None}
    st.findings = [{**finding, "image_url": f"https://example.com/{i}.png", "selector": f"img:nth-of-type({i})"}
                   for i in range(len(CASES))]
    st.pages = [Page(url="https://example.com/", depth=0, referrer=None, images=len(CASES), findings=len(CASES))]
    suggestions = [finding_suggestion(f, _caption_suggestion(res, "m")) for f, (res, *_) in zip(st.findings, CASES)]
    return build_report(st, suggestions, options={}, complete=True, user_agent="ua", version="0",
                        finished_at=st.started_at)


def test_every_report_offers_the_same_adoptable_text():
    report = _report()
    doc = json.loads(to_json(report))
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    expected = [text for _, text, _, _ in CASES]
    assert [f["suggestion"]["suggested_alt"] for f in doc["findings"]] == expected
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert [r["suggested_alt"] for r in rows] == expected
    assert [r["spoken_alt"] for r in rows] == [res["alt"] for res, *_ in CASES]
    assert rows[3]["confidence"] == "" and rows[3]["confidence_basis"] == "text"
    sarif = json.loads(to_sarif(report))
    assert [r["properties"]["suggestedAlt"] for r in sarif["runs"][0]["results"]] == expected
    soup = BeautifulSoup(to_html(report), "html.parser")
    copies = [b["data-copy"] for b in soup.find_all("button", class_="copy")]
    assert copies == expected
    text = soup.get_text()
    assert "caption confidence 40%" in text and "object classifier 91%" in text and "icon meaning 97%" in text
    assert "““" not in text and "””" not in text  # “Appears to say: “Summer sale”” never happens
