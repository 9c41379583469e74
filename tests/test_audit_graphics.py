"""Unnamed graphics in ``alt-text audit`` (rule ``graphic-unnamed``, ACT e88epe): a canvas or a role-less inline svg
that screen readers skip. The markup rule itself is tested in test_audit_rules (GRAPHICS); here: the sanitised copy
of an svg that rsvg-convert rasterises (untrusted input), and end to end on a local site with the bundled checkpoint
and real Tesseract: an svg drawing "W3C" gets the finding and a suggestion from the pipeline, a text banner drawn in
svg the e88epe judgement (attached, with its text as the suggestion), a canvas no pixels without ``--render`` and
its screenshot's with it; ``--fail-on`` does not count them; ``--no-suggest`` reports the same markup findings."""
from __future__ import annotations

import base64
import json
import re

import jsonschema
import pytest
from bs4 import BeautifulSoup
from test_audit_cli import run
from test_audit_crawl import LocalSite, served
from test_audit_judgements_e2e import real_pipeline

from server.audit import graphics
from server.audit.report import SCHEMA
from server.audit.suggest import NO_CANVAS_PIXELS, ImageSource
from server.netsafe import FetchError, FetchLimits

needs_rsvg = pytest.mark.skipif(graphics.rsvg_convert() is None, reason="rsvg-convert is not installed")


def svg(markup: str, page: str = ""):
    soup = BeautifulSoup(page + markup, "lxml", multi_valued_attributes=None)
    return soup, soup.find("svg", recursive=True) if not page else soup.find_all("svg")[-1]


def document(markup: str, page: str = "") -> str:
    soup, el = svg(markup, page)
    data = graphics.svg_document(el, lambda i: soup.find(id=i))
    return data.decode() if data is not None else None


# --- The copy that is rasterised ----------------------------------------------------------------------------------

def test_the_copy_keeps_the_drawing_and_svg_case():
    out = document('<svg viewBox="0 0 100 40" preserveAspectRatio="none"><linearGradient id="g" '
                   'gradientUnits="userSpaceOnUse"/><text textLength="50" fill="url(#g)">W3C</text></svg>')
    assert out.startswith('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"')
    assert "<linearGradient" in out and 'gradientUnits="userSpaceOnUse"' in out and 'textLength="50"' in out
    assert 'preserveAspectRatio="none"' in out and 'fill="url(#g)"' in out and ">W3C</text>" in out
    width, height = map(int, re.search(r'width="(\d+)" height="(\d+)"', out).groups())
    assert max(width, height) == graphics.MIN_SIDE  # small graphics are scaled up for OCR, in proportion
    assert re.search(r'viewBox="-8 -8 116 56"', out)  # a white margin of 8 % of the longer side


def test_the_copy_has_no_script_no_external_reference_and_no_current_color():
    out = document(
        '<svg width="200" height="100" onload="steal()" xmlns:inkscape="x" inkscape:label="l">'
        "<script>steal()</script><foreignObject><iframe src='https://evil.test/'></iframe></foreignObject>"
        '<image href="https://evil.test/x.png" width="9" height="9"/><image xlink:href="file:///etc/passwd"/>'
        '<image href="data:image/png;base64,iVBORw0KGgo=" width="9" height="9"/>'
        '<use href="https://evil.test/s.svg#i"/><rect width="9" height="9" fill="url(https://evil.test/p)" '
        'style="stroke: currentColor; background: url(/x.png)" onclick="x()"/>'
        "<style>@import url(https://evil.test/a.css); rect { fill: url(//evil.test/f); color: currentcolor }"
        "</style><circle r='4' fill='currentColor'/></svg>")
    low = out.lower()
    for gone in ("script", "steal", "foreignobject", "iframe", "evil.test", "file:", "/x.png", "onclick", "onload",
                 "inkscape", "@import", "currentcolor"):
        assert gone not in low, gone
    assert 'href="data:image/png;base64,iVBORw0KGgo="' in out  # a raster data: image stays
    assert out.count("#000000") == 3 and 'fill="none"' in out


def test_a_sprite_symbol_is_brought_in_and_large_graphics_get_no_copy():
    page = ('<svg style="display:none"><symbol id="logo" viewBox="0 0 9 9"><path d="M0 0h9v9z" fill="url(#grad)"/>'
            '</symbol><linearGradient id="grad"/></svg>')
    out = document('<svg width="48" height="48"><use href="#logo"/></svg>', page)
    assert '<defs><symbol id="logo"' in out and '<linearGradient id="grad">' in out
    huge = "<svg>" + '<path d="M0 0h9v9z"/>' * (graphics.MAX_SVG_BYTES // 20) + "</svg>"
    assert document(huge) is None


@needs_rsvg
def test_rasterising_an_svg_and_loading_its_data_url():
    png = graphics.rasterise_svg(document('<svg viewBox="0 0 10 10"><rect width="5" height="5"/></svg>').encode())
    assert png.startswith(b"\x89PNG")
    with pytest.raises(graphics.RasterError) as e:
        graphics.rasterise_svg(b"<svg><unclosed")
    assert e.value.code == "invalid_svg"
    source = ImageSource(None, [], FetchLimits())
    data = document('<svg viewBox="0 0 10 10"><circle cx="5" cy="5" r="4"/></svg>').encode()
    loaded = source.load(graphics.data_url(data, "image/svg+xml"))
    assert loaded.image.size == (512, 512) and loaded.data.startswith(b"\x89PNG")  # the PNG is what is described
    with pytest.raises(FetchError):
        source.load("data:image/svg+xml;base64," + base64.b64encode(b"not svg").decode())


def test_without_rsvg_convert_an_svg_has_no_pixels(monkeypatch):
    from server.audit.rules import RuleOptions, audit_page

    monkeypatch.setattr(graphics, "rsvg_convert", lambda: None)
    check = audit_page('<svg viewBox="0 0 100 40"><text>W3C</text></svg>', "https://e.test/",
                       RuleOptions(judge_images=True))
    (f,) = check.findings
    assert f.rule == "graphic-unnamed" and f.image_url is None and check.images_to_judge == []
    with pytest.raises(FetchError):
        ImageSource(None, [], FetchLimits()).load(graphics.data_url(b"<svg/>", "image/svg+xml"))


# --- End to end: the real pipeline --------------------------------------------------------------------------------

W3C = '<svg id="w3c" width="120" height="48"><text x="8" y="38" font-family="sans-serif" font-size="34">W3C</text></svg>'
SALE = ('<svg id="sale" width="400" height="80"><text x="10" y="55" font-family="serif" font-size="40">Spring sale '
        "20% off</text></svg>")
CANVAS = """<canvas id="banner" width="480" height="100"></canvas>
<script>
const ctx = document.getElementById("banner").getContext("2d");
ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, 480, 100);
ctx.fillStyle = "#000"; ctx.font = "40px serif"; ctx.fillText("Spring sale 20% off", 16, 64);
</script>"""
# Each case: (page, element id, the rule of its findings).
CASES = {
    ("/", "w3c"): {"graphic-unnamed"},
    ("/", "sale"): {"graphic-unnamed"},
    ("/", "titled"): set(),
    ("/", "search"): set(),  # an icon in a named button
    ("/canvas.html", "banner"): {"graphic-unnamed"},
}


def build_site(site: LocalSite) -> LocalSite:
    site.routes["/robots.txt"] = (200, {"Content-Type": "text/plain"}, b"User-agent: *\nAllow: /\n")
    site.page("/", f"<h1>Graphics</h1><p>{W3C}</p><div>{SALE}</div>"
                   '<p><svg id="titled" width="120" height="48"><title>W3C</title><text x="8" y="38">W3C</text></svg>'
                   '</p><button id="search" aria-label="Search"><svg viewBox="0 0 24 24"><path d="M0 0h24v24H0z"/>'
                   '</svg></button><a href="/canvas.html">Canvas</a>')
    site.page("/canvas.html", CANVAS)
    return site


@pytest.fixture(scope="module")
def site():
    yield from served(build_site)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if graphics.rsvg_convert() is None:
        pytest.skip("rsvg-convert is not installed")
    with real_pipeline(tmp_path_factory.mktemp("graphics")) as tmp:
        yield tmp


def audit(site, tmp, *args) -> tuple[dict, dict]:
    out = tmp / f"r{len(list(tmp.glob('r*.json')))}.json"
    r = run(site.url("/"), "--out", out, *args)
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    found: dict = {}
    for f in report["findings"]:
        key = (f["page_url"].removeprefix(site.root), f["selector"].split(" > ")[-1].removeprefix("#"))
        found.setdefault(key, []).append(f)
    return report, found, r


def test_static_audit_svg_pixels_from_the_markup_canvas_none(site, env):
    report, found, r = audit(site, env)
    for key, rules in CASES.items():
        assert {f["rule"] for f in found.get(key, [])} == rules, key
    (w3c,) = found[("/", "w3c")]
    assert w3c["severity"] == "needs review" and w3c["image_url"].startswith("data:image/svg+xml;base64,")
    assert w3c["suggestion"]["kind"] == "caption" and "W3C" in w3c["suggestion"]["suggested_alt"]
    assert w3c["suggestion"]["image_kind"] != "photo"
    # Two words of text: the e88epe judgement is attached, and its text is the suggestion.
    (sale,) = found[("/", "sale")]
    assert sale["judgement"]["rule"] == "image-informative-hidden" and sale["judgement"]["act"] == "e88epe"
    assert sale["judgement"]["message"].startswith("Inline SVG has no name, so screen readers skip it")
    assert "sale" in sale["evidence"]["text"].lower()
    assert sale["suggestion"]["kind"] == "judgement" and "sale" in sale["suggestion"]["suggested_alt"].lower()
    assert 'role="img"' in sale["suggestion"]["message"]
    assert not any(f["rule"] == "image-of-text" for f in report["findings"])  # svg text is markup, not pixels
    (canvas,) = found[("/canvas.html", "banner")]
    assert canvas["image_url"] is None and canvas["suggestion"] == {"kind": "none", "message": NO_CANVAS_PIXELS}
    # To review, never a WCAG failure.
    s = report["summary"]
    assert s["by_rule"]["graphic-unnamed"] == 3 and s["wcag_failures"] == 0
    assert "3 canvas or inline SVG graphic(s) without a name" in r.stdout
    assert run(site.url("/"), "--fail-on", 0).exit_code == 0
    assert run(site.url("/"), "--fail-on", 0, "--fail-scope", "all").exit_code == 3

    plain, plain_found, _ = audit(site, env, "--no-suggest")
    assert {k: [f["rule"] for f in v] for k, v in plain_found.items()} == \
        {k: [f["rule"] for f in v] for k, v in found.items()}
    assert all(f["image_url"] is None and "judgement" not in f for f in plain["findings"])


def test_render_describes_a_canvas_drawn_by_script(site, env):
    from server.audit.render import unavailable

    why = unavailable()
    if why:
        pytest.skip(why)
    report, found, _ = audit(site, env, "--render")
    canvas, of_text = found[("/canvas.html", "banner")]
    assert (canvas["rule"], of_text["rule"]) == ("graphic-unnamed", "image-of-text")  # a canvas's text is pixels
    assert canvas["image_url"].startswith("data:image/png;base64,")  # the screenshot
    assert "sale" in canvas["evidence"]["text"].lower()
    assert canvas["suggestion"]["kind"] == "judgement" and "sale" in canvas["suggestion"]["suggested_alt"].lower()
    assert canvas["judgement"]["message"].startswith("Canvas has no name, so screen readers skip it")
    assert "data-alt-text-graphic" not in canvas["snippet"]
    (w3c,) = found[("/", "w3c")]
    assert w3c["image_url"].startswith("data:image/png;base64,")  # the browser's pixels, not rsvg-convert's
    assert {k for k, fs in found.items() if any(f["rule"] == "graphic-unnamed" for f in fs)} == \
        {k for k, rules in CASES.items() if rules}
    assert report["summary"]["wcag_failures"] == 0
