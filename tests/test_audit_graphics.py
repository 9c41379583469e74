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
from server.audit.crawl import CrawlConfig, Crawler
from server.audit.report import SCHEMA
from server.audit.rules import RuleOptions
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
# Named: the W3C logotype named for another logo (ACT qt1vmo's failed example, in svg), and named for itself.
ERCIM = ('<svg id="ercim" role="img" aria-label="ERCIM logo" width="120" height="48"><text x="8" y="38" '
         'font-family="sans-serif" font-size="34">W3C</text></svg>')
W3C_NAMED = ERCIM.replace('id="ercim"', 'id="w3c-named"').replace("ERCIM logo", "W3C logo")
# Each case: (page, element id, the rule of its findings).
CASES = {
    ("/", "w3c"): {"graphic-unnamed"},
    ("/", "sale"): {"graphic-unnamed"},
    ("/", "titled"): set(),  # named by its <title>, which says what it reads
    ("/", "search"): set(),  # an icon in a named button
    ("/", "ercim"): {"image-name-contradicts-text"},
    ("/", "w3c-named"): set(),
    ("/canvas.html", "banner"): {"graphic-unnamed"},
}
MARKUP_RULES = {k: v - {"image-name-contradicts-text"} for k, v in CASES.items()}  # --no-suggest


def build_site(site: LocalSite) -> LocalSite:
    site.routes["/robots.txt"] = (200, {"Content-Type": "text/plain"}, b"User-agent: *\nAllow: /\n")
    site.page("/", f"<h1>Graphics</h1><p>{W3C}</p><div>{SALE}</div>"
                   '<p><svg id="titled" width="120" height="48"><title>W3C</title><text x="8" y="38">W3C</text></svg>'
                   '</p><button id="search" aria-label="Search"><svg viewBox="0 0 24 24"><path d="M0 0h24v24H0z"/>'
                   f'</svg></button><p>{ERCIM}</p><p>{W3C_NAMED}</p><a href="/canvas.html">Canvas</a>')
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


def ref(site, path: str, selector: str) -> str:
    return graphics.graphic_ref(site.url(path), selector)


def test_static_audit_svg_pixels_from_the_markup_canvas_none(site, env):
    report, found, r = audit(site, env)
    for key, rules in CASES.items():
        assert {f["rule"] for f in found.get(key, [])} == rules, key
    (w3c,) = found[("/", "w3c")]
    # A short reference to the graphic, not its pixels.
    assert w3c["severity"] == "needs review" and w3c["graphic"] == "svg"
    assert w3c["image_url"] == ref(site, "/", "#w3c") == site.url("/") + "#selector(type=CssSelector,value=%23w3c)"
    assert "data:" not in json.dumps(report)
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
    for key, rules in MARKUP_RULES.items():
        assert {f["rule"] for f in plain_found.get(key, [])} == rules, key
    assert {k: [f["rule"] for f in v] for k, v in plain_found.items()} == \
        {k: [f["rule"] for f in v if f["rule"] != "image-name-contradicts-text"] for k, v in found.items() if k !=
         ("/", "ercim")}
    assert all(f["image_url"] is None and "judgement" not in f for f in plain["findings"])


def test_a_named_svg_is_judged_against_its_pixels(site, env):
    report, found, r = audit(site, env)
    (ercim,) = found[("/", "ercim")]
    assert ercim["act"] == "qt1vmo" and ercim["severity"] == "needs review" and ercim["graphic"] == "svg"
    assert ercim["current_alt"] == "ERCIM logo" and ercim["image_url"] == ref(site, "/", "#ercim")
    assert ercim["evidence"]["text"] == "W3C" and "W3C" in ercim["suggestion"]["suggested_alt"]
    assert ercim["suggestion"]["kind"] == "judgement"
    assert found.get(("/", "w3c-named")) is None  # its name agrees with what it reads
    assert report["summary"]["wcag_failures"] == 0 and "to review: 1 image judgement(s)" in r.stdout


def test_render_describes_a_canvas_drawn_by_script(site, env):
    from server.audit.render import unavailable

    why = unavailable()
    if why:
        pytest.skip(why)
    report, found, _ = audit(site, env, "--render")
    canvas, of_text = found[("/canvas.html", "banner")]
    assert (canvas["rule"], of_text["rule"]) == ("graphic-unnamed", "image-of-text")  # a canvas's text is pixels
    assert canvas["image_url"] == ref(site, "/canvas.html", "#banner")  # its screenshot was described
    assert "sale" in canvas["evidence"]["text"].lower()
    assert canvas["suggestion"]["kind"] == "judgement" and "sale" in canvas["suggestion"]["suggested_alt"].lower()
    assert canvas["judgement"]["message"].startswith("Canvas has no name, so screen readers skip it")
    assert "data-alt-text-graphic" not in canvas["snippet"]
    assert {k for k, fs in found.items() if any(f["rule"] == "graphic-unnamed" for f in fs)} == \
        {k for k, rules in CASES.items() if "graphic-unnamed" in rules}
    assert report["summary"]["wcag_failures"] == 0
    assert "data:" not in json.dumps(report)
    # The browser's pixels, not rsvg-convert's, for the svgs too, named or not; kept beside the crawl, not in it.
    state = Crawler(CrawlConfig(start_url=site.url("/"), render=True,
                                rule_options=RuleOptions(judge_images=True))).run()
    for key in ("#w3c", "#ercim"):
        assert state.graphics.get(ref(site, "/", key)).startswith("data:image/png;base64,"), key


def test_a_named_canvas_is_judged_under_render(tmp_path, env):
    """ACT qt1vmo's failed example: a canvas named "HTML 5 logo" that shows another logo (here: W3C)."""
    from server.audit.render import unavailable

    why = unavailable()
    if why:
        pytest.skip(why)
    draw = ('<canvas id="{id}" role="img" aria-label="{name}" width="240" height="100"></canvas><script>'
            'const c{n} = document.getElementById("{id}").getContext("2d"); c{n}.fillStyle = "#fff"; '
            'c{n}.fillRect(0, 0, 240, 100); c{n}.fillStyle = "#000"; c{n}.font = "bold 64px sans-serif"; '
            'c{n}.fillText("W3C", 30, 75);</script>')

    def build(s: LocalSite) -> LocalSite:
        s.routes["/robots.txt"] = (200, {"Content-Type": "text/plain"}, b"User-agent: *\nAllow: /\n")
        s.page("/", draw.format(id="other", name="HTML 5 logo", n=1) + draw.format(id="own", name="W3C logo", n=2))
        return s

    for s in served(build):
        _, static, _ = audit(s, env)
        assert static == {}  # without --render a canvas has no pixels
        _, found, _ = audit(s, env, "--render")
        assert {k: [f["rule"] for f in v] for k, v in found.items()} == \
            {("/", "other"): ["image-name-contradicts-text"]}
        (other,) = found[("/", "other")]
        assert other["graphic"] == "canvas" and other["current_alt"] == "HTML 5 logo"
        assert "W3C" in other["evidence"]["text"]


# --- Report size: a reference, not the pixels ---------------------------------------------------------------------

def _paths(n: int) -> str:
    return "".join(f'<path d="M{i % 500} {i // 500 * 3} l7 3 l-4 5 l9 -2 z" fill="#{(i * 2654435761) % 0xffffff:06x}"/>'
                   for i in range(n))


@pytest.fixture
def fake_pipeline(tmp_path, monkeypatch):
    """Audits in tmp_path, with a cache of their own and the fake describer of test_audit_cli."""
    from test_audit_cli import FakeDescriber

    from server.audit import command

    monkeypatch.setenv("ALT_TEXT_CACHE_PATH", str(tmp_path / "cache.sqlite3"))
    monkeypatch.delenv("ALT_TEXT_CACHE", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(command, "load_describer", lambda checkpoint, beam_size: FakeDescriber())
    return monkeypatch


@needs_rsvg
def test_report_size_does_not_grow_with_the_graphic(tmp_path, fake_pipeline):
    """A page with a large svg (130 KB of markup: before, its data: URL was in every report and twice in the
    journal) gives reports of the same size as one with a small svg; the HTML embeds a small thumbnail of it."""

    def build(s: LocalSite) -> LocalSite:
        s.routes["/robots.txt"] = (200, {"Content-Type": "text/plain"}, b"User-agent: *\nAllow: /\n")
        s.page("/", '<a href="/small.html">small</a> <a href="/large.html">large</a>')
        s.page("/small.html", f'<svg id="g" width="1000" height="600" viewBox="0 0 500 60">{_paths(20)}</svg>')
        s.page("/large.html", f'<svg id="g" width="1000" height="600" viewBox="0 0 500 60">{_paths(2500)}</svg>')
        return s

    sizes = {}
    for s in served(build):
        assert len(s.routes["/large.html"][2]) > 120_000
        for page in ("small", "large"):
            outs = [tmp_path / f"{page}.{ext}" for ext in ("json", "csv", "sarif", "html")]
            r = run(s.url(f"/{page}.html"), "--depth", "0", *[a for o in outs for a in ("--out", o)])
            assert r.exit_code == 0, r.output
            report = json.loads(outs[0].read_text())
            jsonschema.Draft202012Validator(SCHEMA).validate(report)
            (f,) = report["findings"]
            assert f["rule"] == "graphic-unnamed" and f["image_url"] == ref(s, f"/{page}.html", "#g")
            assert f["suggestion"]["kind"] in ("caption", "withheld")  # its pixels were described
            sizes[page] = {o.suffix: o.stat().st_size for o in outs}
            html = outs[3].read_text()
            assert html.count('<img class="thumb" src="data:image/jpeg;base64,') == 1
        state = Crawler(CrawlConfig(start_url=s.url("/large.html"), max_depth=0,
                                    rule_options=RuleOptions(judge_images=True)), state_path=tmp_path / "j.jsonl").run()
        journal = (tmp_path / "j.jsonl").stat().st_size
        assert journal < 5_000 and len(state.graphics) == 1  # the pixels beside it, once
    assert sizes["large"][".json"] < 5_000 and sizes["large"][".csv"] < 2_000
    for ext in (".json", ".csv", ".sarif"):
        assert abs(sizes["large"][ext] - sizes["small"][ext]) < 200, (ext, sizes)
    assert abs(sizes["large"][".html"] - sizes["small"][".html"]) < 8_000, sizes  # two 96 px thumbnails


@needs_rsvg
def test_resume_describes_the_graphics_of_pages_audited_before_the_interrupt(tmp_path, fake_pipeline):
    """The journal names the graphic; its pixels, beside it, survive the interrupt, and are gone when done."""

    def build(s: LocalSite) -> LocalSite:
        s.routes["/robots.txt"] = (200, {"Content-Type": "text/plain"}, b"User-agent: *\nAllow: /\n")
        s.page("/", f'<p>{W3C}</p><a href="/two.html">two</a>')
        s.page("/two.html", f"<div>{SALE}</div>")
        return s

    from server.audit import command

    monkeypatch = fake_pipeline
    original = command.Progress.page

    def stop_after_one(self, page, state):
        original(self, page, state)
        if len(state.pages) == 1:
            raise KeyboardInterrupt

    for s in served(build):
        args = [s.url("/"), "--concurrency", "1", "--out", "r.json"]
        monkeypatch.setattr(command.Progress, "page", stop_after_one)
        assert run(*args).exit_code == 130
        assert (tmp_path / "r.state.pixels.jsonl").exists()
        assert "data:" not in (tmp_path / "r.state.jsonl").read_text()
        monkeypatch.setattr(command.Progress, "page", original)
        r = run(*args, "--resume")
        assert r.exit_code == 0, r.output
        report = json.loads((tmp_path / "r.json").read_text())
        kinds = {f["selector"]: f["suggestion"]["kind"] for f in report["findings"]}
        assert kinds.keys() == {"#w3c", "#sale"}  # the first page's svg is described after resuming
        assert set(kinds.values()) <= {"caption", "withheld"} and report["complete"]
        assert not (tmp_path / "r.state.jsonl").exists() and not (tmp_path / "r.state.pixels.jsonl").exists()
