"""The audit's static-HTML rules: axe-core's pass/fail cases for WCAG 1.1.1, the suspicious-alt heuristics, and
what every finding carries (a selector that finds the element, a snippet, an absolute image URL)."""
from __future__ import annotations

from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from server.audit.rules import (RULES, SEVERITY, WCAG_1_1_1, Finding, RuleOptions, accessible_name, check_page,
                                suspicious_reason)

FIXTURES = Path(__file__).parent / "fixtures" / "audit"
PAGE = "https://example.com/blog/post.html"
GOOD = "A red bicycle leaning on a brick wall"


def rules(html: str, **options) -> list[str]:
    return [f.rule for f in check_page(html, PAGE, RuleOptions(**options))]


def only(html: str) -> Finding:
    findings = check_page(html, PAGE)
    assert len(findings) == 1, findings
    return findings[0]


# --- WCAG 1.1.1 rules, axe-core's documented passes and failures ---------------------------------------------------

AXE_CASES = {
    # image-alt
    "img alt text": (f'<img src="a.png" alt="{GOOD}">', []),
    "img empty alt is decorative": ('<img src="a.png" alt="">', []),
    "img role=presentation": ('<img src="a.png" role="presentation">', []),
    "img role=none": ('<img src="a.png" role="none">', []),
    "img aria-label": (f'<img src="a.png" aria-label="{GOOD}">', []),
    "img aria-labelledby": (f'<p id="l">{GOOD}</p><img src="a.png" aria-labelledby="l">', []),
    "img aria-labelledby, one id missing": (f'<p id="l">{GOOD}</p><img src="a.png" aria-labelledby="gone l">', []),
    "img title": (f'<img src="a.png" title="{GOOD}">', []),
    "img no alt": ('<img src="a.png">', ["image-alt"]),
    "img alt of spaces": ('<img src="a.png" alt="  ">', ["image-alt"]),
    "img alt of spaces wins over aria-label": (f'<img src="a.png" alt=" " aria-label="{GOOD}">', ["image-alt"]),
    "img aria-labelledby to a missing id": ('<img src="a.png" aria-labelledby="gone">', ["image-alt"]),
    "img aria-labelledby to an empty element": ('<p id="l"> </p><img src="a.png" aria-labelledby="l">',
                                                ["image-alt"]),
    "img blank aria-label": ('<img src="a.png" aria-label="  ">', ["image-alt"]),
    "img empty title": ('<img src="a.png" title="">', ["image-alt"]),
    "img role=presentation but focusable": ('<img src="a.png" role="presentation" tabindex="0">', ["image-alt"]),
    "img role=none with global ARIA": ('<img src="a.png" role="none" aria-describedby="d">', ["image-alt"]),
    # input-image-alt
    "input image alt": ('<input type="image" src="go.png" alt="Search the site">', []),
    "input image aria-label": ('<input type="image" src="go.png" aria-label="Search the site">', []),
    "input image aria-labelledby": ('<b id="s">Search the site</b><input type="image" src="go.png" '
                                    'aria-labelledby="s">', []),
    "input image title": ('<input type="image" src="go.png" title="Search the site">', []),
    "input image no alt": ('<input type="image" src="go.png">', ["input-image-alt"]),
    "input image empty alt fails": ('<input type="image" src="go.png" alt="">', ["input-image-alt"]),
    "input image alt of spaces": ('<input type="image" src="go.png" alt=" ">', ["input-image-alt"]),
    "input image type is case-insensitive": ('<input type="IMAGE" src="go.png">', ["input-image-alt"]),
    "input of another type is not an image": ('<input type="submit" value="Go">', []),
    "input image in a label (axe #4607)": ('<label>Search <input type="image" src="go.png"></label>', []),
    "input image with label for=": ('<label for="go">Search</label><input type="image" id="go" src="go.png">', []),
    "input image with an empty label": ('<label> <input type="image" src="go.png"></label>', ["input-image-alt"]),
    "input image disabled, role needing no name": ('<input type="image" src="go.png" role="gridcell" disabled>', []),
    "input image focusable, role needing no name": ('<input type="image" src="go.png" role="gridcell">',
                                                    ["input-image-alt"]),
    "img role=separator is not an image (axe #2629)": ('<img src="a.png" role="separator">', []),
    "img role=separator but focusable": ('<img src="a.png" role="separator" tabindex="-1">', ["image-alt"]),
    "img role=button needs a name": ('<img src="a.png" role="button">', ["image-alt"]),
    "img unknown role counts as none": ('<img src="a.png" role="doc-cover">', ["image-alt"]),
    "object role=separator is not an image": ('<object data="a.svg" role="separator"></object>', []),
    # area-alt
    "area alt": ('<map name="m"><area href="/paris" alt="Paris office"></map>', []),
    "area aria-label": ('<map name="m"><area href="/paris" aria-label="Paris office"></map>', []),
    "area title": ('<map name="m"><area href="/paris" title="Paris office"></map>', []),
    "area without href is not a link": ('<map name="m"><area shape="rect" coords="0,0,1,1"></map>', []),
    "area no alt": ('<map name="m"><area href="/paris"></map>', ["area-alt"]),
    "area empty alt": ('<map name="m"><area href="/paris" alt=""></map>', ["area-alt"]),
    # role-img-alt
    "role img aria-label": ('<div role="img" aria-label="Sales rose in May"></div>', []),
    "role img aria-labelledby": ('<p id="c">Sales rose in May</p><div role="img" aria-labelledby="c"></div>', []),
    "role img title": ('<span role="img" title="Sales rose in May"></span>', []),
    "role img no name": ('<div role="img"></div>', ["role-img-alt"]),
    "role img text content is not a name": ('<div role="img">Sales rose in May</div>', ["role-img-alt"]),
    "role img blank aria-label": ('<span role="img" aria-label=" "></span>', ["role-img-alt"]),
    "role img on an img is image-alt's": ('<img src="a.png" role="img">', ["image-alt"]),
    # svg-img-alt
    "svg title child": ('<svg role="img"><title>Rainfall by month</title></svg>', []),
    "svg aria-label": ('<svg role="img" aria-label="Rainfall by month"></svg>', []),
    "svg aria-labelledby": ('<h2 id="h">Rainfall by month</h2><svg role="img" aria-labelledby="h"></svg>', []),
    "svg title attribute": ('<svg role="img" title="Rainfall by month"></svg>', []),
    "svg without role is not checked": ("<svg><rect></rect></svg>", []),
    "svg graphics-document with title": ('<svg role="graphics-document"><title>Floor plan</title></svg>', []),
    "svg no name": ('<svg role="img"><rect></rect></svg>', ["svg-img-alt"]),
    "svg empty title": ('<svg role="img"><title> </title></svg>', ["svg-img-alt"]),
    "svg title must be a direct child": ('<svg role="img"><g><title>Rainfall</title></g></svg>', ["svg-img-alt"]),
    "svg graphics-document no name": ('<svg role="graphics-document"></svg>', ["svg-img-alt"]),
    "svg graphics-symbol inside svg": ('<svg><g role="graphics-symbol"></g></svg>', ["svg-img-alt"]),
    "svg role img on an inner element": ('<svg><circle role="img" r="4"></circle></svg>', ["svg-img-alt"]),
    # object-alt
    "object aria-label": ('<object data="tour.pdf" aria-label="Harbour tour brochure"></object>', []),
    "object title": ('<object data="tour.pdf" title="Harbour tour brochure"></object>', []),
    "object fallback text does not name it (axe #2525)": ('<object data="tour.pdf">Harbour tour brochure</object>',
                                                           ["object-alt"]),
    "object role presentation": ('<object data="border.svg" role="presentation"></object>', []),
    "object without data shows its fallback": ("<object></object>", []),
    "object no name": ('<object data="tour.pdf"></object>', ["object-alt"]),
    "object blank fallback": ('<object data="logo.svg" type="image/svg+xml">  </object>', ["object-alt"]),
}


@pytest.mark.parametrize("html, expected", AXE_CASES.values(), ids=AXE_CASES.keys())
def test_axe_rules(html, expected):
    assert rules(html) == expected


@pytest.mark.parametrize("rule, severity", [
    ("image-alt", "critical"), ("input-image-alt", "critical"), ("area-alt", "critical"),
    ("role-img-alt", "serious"), ("svg-img-alt", "serious"), ("object-alt", "serious"),
])
def test_axe_rules_carry_axe_severity_and_wcag_reference(rule, severity):
    html = next(h for h, expected in AXE_CASES.values() if expected == [rule])
    finding = only(html)
    assert (finding.rule, finding.severity, finding.wcag) == (rule, severity, WCAG_1_1_1)
    assert finding.page_url == PAGE


def test_rule_ids_and_severities():
    assert set(RULES) == {
        "image-alt", "input-image-alt", "area-alt", "role-img-alt", "svg-img-alt", "object-alt", "button-name",
        "link-name", "alt-suspicious-filename", "alt-placeholder", "alt-stopwords-only", "alt-redundant-prefix",
        "alt-too-long", "alt-duplicate-different-images", "alt-duplicates-adjacent-text", "graphic-unnamed",
    }
    assert {SEVERITY[r] for r in RULES if r.startswith("alt-")} <= {"moderate", "minor"}
    assert SEVERITY["graphic-unnamed"] == "needs review"  # never a WCAG failure by itself


# --- Hidden and inert images are not checked -----------------------------------------------------------------------

@pytest.mark.parametrize("html", [
    '<img src="a.png" aria-hidden="true">',
    '<div aria-hidden="TRUE"><p><img src="a.png"></p></div>',
    '<img src="a.png" hidden>',
    '<section hidden><img src="a.png"></section>',
    '<img src="a.png" style="display:none">',
    '<div style="color: red; display: none !important"><img src="a.png"></div>',
    '<div style="visibility:hidden"><svg role="img"></svg></div>',
    '<svg aria-hidden="true" role="img"></svg>',
    '<div role="img" aria-hidden="true"></div>',
    '<noscript><img src="a.png"></noscript>',
    '<template><img src="a.png"></template>',
], ids=["aria-hidden", "aria-hidden ancestor", "hidden", "hidden ancestor", "display none",
        "display none ancestor", "visibility hidden", "svg aria-hidden", "role img aria-hidden", "noscript",
        "template"])
def test_hidden_images_are_skipped(html):
    assert rules(html) == []


def test_aria_hidden_false_does_not_hide():
    assert rules('<img src="a.png" aria-hidden="false">') == ["image-alt"]


def test_areas_are_checked_even_when_their_map_is_hidden():
    # axe's area-alt has excludeHidden: false, because a <map> is never rendered itself.
    assert rules('<map name="m" style="display:none"><area href="/x"></map>') == ["area-alt"]


# --- accessible_name -----------------------------------------------------------------------------------------------

def _name(html: str, selector: str = "#t") -> str | None:
    soup = BeautifulSoup(html, "lxml")
    return accessible_name(soup.select_one(selector), soup)


@pytest.mark.parametrize("html, expected", [
    ('<i id="a">Left</i><i id="b">  </i><i id="c">right</i>'
     '<img id="t" aria-labelledby="a missing b c" aria-label="label" alt="alt">', "Left right"),
    ('<img id="t" aria-labelledby="missing" aria-label=" the  label " alt="alt">', "the label"),
    ('<img id="t" alt="The alt" title="The title">', "The alt"),
    ('<img id="t" alt="" title="The title">', "The title"),
    ('<img id="t" alt="">', ""),
    ('<img id="t" alt="   ">', "   "),
    ('<img id="t" src="a.png">', None),
    ('<svg id="t" role="img" title="attr"><title>Child</title></svg>', "Child"),
    ('<object id="t" data="x.pdf">  Fallback <b>text</b> </object>', None),
    ('<label>Find <b>it</b><input id="t" type="image" src="go.png"></label>', "Find it"),
    ('<label for="t">Find</label><input id="t" type="image" alt="Go" src="go.png">', "Go"),
    ('<div id="t" role="img">Content is not a name</div>', None),
    ('<span id="other">Other</span><img id="logo" alt="Site logo"><img id="t" aria-labelledby="logo">', "Site logo"),
])
def test_accessible_name(html, expected):
    assert _name(html) == expected


# --- Suspicious alt text on images that do have a name -------------------------------------------------------------

@pytest.mark.parametrize("alt, expected", [
    ("IMG_1234.jpg", "alt-suspicious-filename"),
    ("DSC0001", "alt-suspicious-filename"),
    ("photo.png", "alt-suspicious-filename"),
    ("banner_final-v2.webp", "alt-suspicious-filename"),
    ("hero_banner_final", "alt-suspicious-filename"),
    ("https://cdn.example.com/a/b", "alt-suspicious-filename"),
    ("image", "alt-placeholder"),
    ("Photo", "alt-placeholder"),
    ("Image 1", "alt-placeholder"),
    ("untitled-3", "alt-placeholder"),
    ("placeholder", "alt-placeholder"),
    ("  logo ", "alt-placeholder"),
    ("a logo", "alt-stopwords-only"),
    ("img 01 !!", "alt-placeholder"),
    ("the image (01)", "alt-stopwords-only"),
    ("Cat", None),  # a short real word is a name (more cases in tests/vectors/names.json)
    ("Image of a golden retriever on a beach", "alt-redundant-prefix"),
    ("picture of the team at the 2024 retreat", "alt-redundant-prefix"),
    ("Photo: sunset over the pier", "alt-redundant-prefix"),
    ("A " + "very " * 40 + "long description", "alt-too-long"),
    (GOOD, None),
    ("Picture-perfect beach at low tide", None),
    ("Logo of the Harbour Travel company", None),
    ("TCP/IP", None),
    ("", None),
    ("   ", None),
])
def test_suspicious_reason(alt, expected):
    assert suspicious_reason(alt) == expected


def test_max_alt_length_is_an_option():
    alt = "Ten words " * 5  # 50 characters
    assert suspicious_reason(alt, RuleOptions(max_alt_length=40)) == "alt-too-long"
    assert suspicious_reason(alt) is None
    assert rules(f'<img src="a.png" alt="{alt}">', max_alt_length=40) == ["alt-too-long"]


@pytest.mark.parametrize("alt, rule, severity", [
    ("IMG_1234.jpg", "alt-suspicious-filename", "moderate"),
    ("image", "alt-placeholder", "moderate"),
    ("an icon", "alt-stopwords-only", "moderate"),
    ("Image of a golden retriever on a beach", "alt-redundant-prefix", "minor"),
    ("word " * 40, "alt-too-long", "minor"),
])
def test_suspicious_alt_findings(alt, rule, severity):
    finding = only(f'<img src="dog.jpg" alt="{alt}">')
    assert (finding.rule, finding.severity, finding.wcag) == (rule, severity, WCAG_1_1_1)
    assert finding.current_alt == " ".join(alt.split())
    assert finding.image_url == "https://example.com/blog/dog.jpg"


def test_suspicious_rules_apply_to_every_named_element():
    html = ('<input type="image" src="go.png" alt="button.png">'
            '<svg role="img"><title>graphic</title></svg>'
            '<div role="img" aria-label="IMG_0001"></div>')
    assert rules(html) == ["alt-suspicious-filename", "alt-placeholder", "alt-suspicious-filename"]


# --- Same alt on different images; alt repeating adjacent text -----------------------------------------------------

def test_same_alt_on_different_images_flags_each_of_them():
    findings = check_page(f'<img src="a.jpg" alt="{GOOD}"><p><img src="b.jpg" alt="  {GOOD.upper()} "></p>', PAGE)
    assert [f.rule for f in findings] == ["alt-duplicate-different-images"] * 2
    assert {f.image_url for f in findings} == {"https://example.com/blog/a.jpg", "https://example.com/blog/b.jpg"}


def test_same_alt_on_the_same_image_is_fine():
    assert rules(f'<img src="a.jpg" alt="{GOOD}"><img src="./a.jpg" alt="{GOOD}">') == []


def test_same_placeholder_alt_is_reported_once_per_image_as_placeholder():
    assert rules('<img src="a.jpg" alt="image"><img src="b.jpg" alt="image">') == ["alt-placeholder"] * 2


@pytest.mark.parametrize("html", [
    '<a href="/"><img src="home.png" alt="Home page"> Home page</a>',
    '<figure><img src="p.jpg" alt="The harbour at dawn"><figcaption>The harbour at dawn.</figcaption></figure>',
    '<p><img src="p.jpg" alt="Jane Doe, CEO">\n  jane doe — CEO</p>',
    '<p><span>Jane  Doe</span><!-- portrait --> <img src="p.jpg" alt="jane doe"></p>',
], ids=["link text", "figcaption", "following text", "previous element"])
def test_alt_that_repeats_adjacent_text(html):
    assert rules(html) == ["alt-duplicates-adjacent-text"]


@pytest.mark.parametrize("html", [
    '<a href="/"><img src="home.png" alt="Harbour Travel home"></a>',
    '<figure><img src="p.jpg" alt="Boats moored in the harbour"><figcaption>The harbour at dawn</figcaption></figure>',
    '<p>Jane Doe is our CEO. <img src="p.jpg" alt="Jane Doe"></p>',
], ids=["image-only link", "different caption", "longer text"])
def test_alt_that_does_not_repeat_adjacent_text(html):
    assert rules(html) == []


def test_aria_labelledby_pointing_at_the_adjacent_text_is_not_a_duplicate():
    # ARIA10: naming an image by reference to the visible caption is the recommended way to reuse it.
    assert rules('<figure><img src="p.jpg" aria-labelledby="c"><figcaption id="c">The harbour at dawn</figcaption>'
                 "</figure>") == []


@pytest.mark.parametrize("html", [
    '<a href="/"><img src="home.png" alt="Home" role="presentation">Home</a>',
    '<svg role="img"><title>Home</title></svg><img src="home.png" alt="Home">',
    '<p><img src="home.png" alt="Home"><span hidden>Home</span></p>',
    '<p><img src="home.png" alt="Home"><script>Home</script></p>',
    '<svg role="img" aria-label="Home"></svg><span>Home</span>',
], ids=["presentational image", "neighbour svg title", "hidden neighbour", "script", "not an img"])
def test_only_rendered_text_next_to_a_read_img_is_a_duplicate(html):
    assert "alt-duplicates-adjacent-text" not in rules(html)


def test_rendered_text_is_iterative():
    from server.audit.rules import rendered_text
    deep = "<div>" * 5000 + "deep" + "</div>" * 5000
    soup = BeautifulSoup(f"<p id='p'>{deep}<svg><title>no</title><text>yes</text></svg></p>", "html.parser")
    assert rendered_text(soup.find(id="p")).split() == ["deep", "yes"]


def test_a_decorative_image_next_to_its_text_is_fine():
    assert rules('<a href="/"><img src="home.png" alt=""> Home</a>') == []


# --- Decorative candidates -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("img", [
    '<img src="chevron.png" width="12" height="12">',
    '<img src="chevron.png" width="16px" height="16">',
    '<img src="spacer.gif" width="300" height="20">',
    '<img src="/i/blank.gif">',
    '<img src="pixel.png">',
    '<img src="/t/ad-1x1.png?c=3">',
], ids=["tiny", "tiny 16px", "spacer", "blank", "pixel", "1x1"])
def test_decorative_candidates(img):
    finding = only(img)
    assert finding.rule == "image-alt" and finding.decorative_candidate
    assert 'alt=""' in finding.message and "looks decorative" in finding.message


@pytest.mark.parametrize("img", [
    '<img src="photo.jpg" width="800" height="600">',
    '<img src="photo.jpg" width="12">',
    '<img src="pixel_art_cat.png">',
    '<img src="dotnet.png" width="auto" height="10">',
], ids=["large", "one dimension only", "pixel art", "unparseable width"])
def test_not_decorative_candidates(img):
    finding = only(img)
    assert not finding.decorative_candidate
    assert "looks decorative" not in finding.message


def test_tiny_px_is_an_option():
    img = '<img src="i.png" width="24" height="24">'
    assert not only(img).decorative_candidate
    assert check_page(img, PAGE, RuleOptions(tiny_px=24))[0].decorative_candidate


def test_an_image_repeated_five_times_is_a_decorative_candidate():
    five = check_page('<img src="star.png">' * 4 + '<img src="/blog/star.png">', PAGE)
    four = check_page('<img src="star.png">' * 4, PAGE)
    assert [f.decorative_candidate for f in five] == [True] * 5
    assert [f.decorative_candidate for f in four] == [False] * 4
    assert all(f.decorative_candidate for f in check_page('<img src="s.png">' * 3, PAGE,
                                                          RuleOptions(repeat_threshold=3)))


def test_tiny_inline_svg_is_a_decorative_candidate():
    finding = only('<svg role="img" width="16" height="16"><path d="M0 0"></path></svg>')
    assert finding.decorative_candidate and 'aria-hidden="true"' in finding.message


# --- Image URLs ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("html, page, expected", [
    ('<img src="img/a.png">', PAGE, "https://example.com/blog/img/a.png"),
    ('<img src="/img/a.png">', PAGE, "https://example.com/img/a.png"),
    ('<img src="../a.png">', "https://example.com/x/y/z.html", "https://example.com/x/a.png"),
    ('<img src="//cdn.example.net/a.png">', PAGE, "https://cdn.example.net/a.png"),
    ('<img src="http://other.example/a.png">', PAGE, "http://other.example/a.png"),
    ('<img src="  a b.png  ">', PAGE, "https://example.com/blog/a b.png"),
    ('<base href="https://cdn.example.net/assets/"><img src="a.png">', PAGE, "https://cdn.example.net/assets/a.png"),
    ('<base href="/static/"><img src="a.png">', PAGE, "https://example.com/static/a.png"),
    ('<base target="_blank"><base href="/second/"><img src="a.png">', PAGE, "https://example.com/second/a.png"),
    ('<img srcset="small.jpg 480w, large.jpg 1080w" sizes="50vw">', PAGE, "https://example.com/blog/small.jpg"),
    ('<img srcset="one.jpg, two.jpg 2x">', PAGE, "https://example.com/blog/one.jpg"),
    ('<img src="src.jpg" srcset="set.jpg 2x">', PAGE, "https://example.com/blog/src.jpg"),
    ('<img data-src="lazy.jpg">', PAGE, "https://example.com/blog/lazy.jpg"),
    ('<input type="image" src="go.png">', PAGE, "https://example.com/blog/go.png"),
    ('<object data="media/tour.pdf"></object>', PAGE, "https://example.com/blog/media/tour.pdf"),
    ('<div role="img" style="background-image: url(\'bg.jpg\')"></div>', PAGE, "https://example.com/blog/bg.jpg"),
    ('<svg role="img"></svg>', PAGE, None),
    ('<map><area href="/x"></map>', PAGE, None),
    ("<img>", PAGE, None),
])
def test_image_url_resolution(html, page, expected):
    assert check_page(html, page)[0].image_url == expected


# --- Selectors and snippets ----------------------------------------------------------------------------------------

def _assert_selectors_find_exactly_their_element(html: str, findings: list[Finding]) -> None:
    soup = BeautifulSoup(html, "lxml", multi_valued_attributes=None)
    assert findings
    for f in findings:
        matches = soup.select(f.selector)
        assert len(matches) == 1, (f.selector, matches)
        outer = str(matches[0])
        assert f.snippet == outer or (f.snippet.endswith("…") and outer.startswith(f.snippet[:-1])), f.selector


def test_selectors_on_a_realistic_page():
    html = (FIXTURES / "blog_post.html").read_text()
    findings = check_page(html, "https://travel.example/blog/2024/coast.html")
    _assert_selectors_find_exactly_their_element(html, findings)
    assert [f.rule for f in findings] == [
        "image-alt", "image-alt", "image-alt",  # two tiny arrows in links, a spacer
        "alt-suspicious-filename", "alt-duplicates-adjacent-text",
        "image-alt", "image-alt",  # srcset only; alt of spaces
        "alt-duplicate-different-images", "alt-duplicate-different-images",
        "image-alt", "image-alt",  # two images sharing id="dup"
        "svg-img-alt", "role-img-alt", "input-image-alt", "area-alt", "object-alt",
    ]
    assert findings[0].selector.startswith("#top > ")  # anchored at the nearest unique id
    assert [f.image_url for f in findings[:3]] == ["https://travel.example/static/icons/arrow.png"] * 2 + [
        "https://travel.example/static/spacer.gif"]
    assert [f.decorative_candidate for f in findings[:4]] == [True, True, True, False]


@pytest.mark.parametrize("html", [
    '<img id="hero" src="a.png">',
    '<img id="dup" src="a.png"><img id="dup" src="b.png">',
    '<div id="1st:col" class="x"><img src="a.png"><img src="b.png"></div>',
    '<img id="has space" src="a.png"><img id="has.dot[0]" src="b.png">',
    "<ul>" + "<li><a><img src='i.png'></a></li>" * 3 + "</ul><ul><li><img src='j.png'></li></ul>",
    '<fb:like><img src="a.png"></fb:like><my-widget><img src="b.png"></my-widget>',
    '<svg><g></g><g><circle role="img"></circle><circle role="img"></circle></g></svg>',
], ids=["unique id", "duplicate ids", "id needing escapes", "odd ids", "repeated lists", "odd tag names", "in svg"])
def test_selectors_are_unique(html):
    findings = check_page(html, PAGE)
    _assert_selectors_find_exactly_their_element(html, findings)
    assert len({f.selector for f in findings}) == len(findings)


def test_unique_id_gives_a_short_selector():
    assert only('<img id="hero" src="a.png">').selector == "#hero"
    assert only('<div id="main"><p><span><img src="a.png"></span></p></div>').selector == "#main > p > span > img"


def test_snippet_is_the_outer_html_truncated():
    short = only('<img src="a.png" class="x">')
    assert short.snippet == '<img class="x" src="a.png"/>'
    long = only(f'<img src="a.png" data-tracking="{"x" * 1000}">')
    assert len(long.snippet) == 300 and long.snippet.endswith("…")
    assert long.snippet.startswith('<img data-tracking="xxx')
    assert len(check_page('<svg role="img">' + "<path></path>" * 50 + "</svg>", PAGE,
                          RuleOptions(snippet_chars=40))[0].snippet) == 40


# --- Messages and current alt --------------------------------------------------------------------------------------

@pytest.mark.parametrize("html, current_alt, hint", [
    ('<img src="a.png">', None, 'alt=""'),
    ('<img src="a.png" alt="  ">', "  ", "only spaces"),
    ('<img src="a.png" aria-labelledby="nope">', None, "aria-labelledby"),
    ('<input type="image" src="go.png" alt="">', "", "what the button does"),
    ('<map><area href="/x"></map>', None, "where the link goes"),
    ('<svg role="img"></svg>', None, "<title>"),
    ('<object data="x.pdf"></object>', None, "aria-label or a title"),
])
def test_failure_messages_say_what_is_wrong_and_how_to_fix_it(html, current_alt, hint):
    finding = only(html)
    assert finding.current_alt == current_alt
    assert hint in finding.message
    assert finding.message.endswith(".") and "\n" not in finding.message


# --- Robustness ----------------------------------------------------------------------------------------------------

def test_malformed_html_does_not_crash():
    html = (FIXTURES / "malformed.html").read_text()
    findings = check_page(html, "https://travel.example/blog/2024/coast.html")
    _assert_selectors_find_exactly_their_element(html, findings)
    assert {"area-alt", "input-image-alt", "role-img-alt", "image-alt"} <= {f.rule for f in findings}


@pytest.mark.parametrize("html", [
    "", "   ", "just text, no tags", "<", "<img", "<img src=", "<<img>>", "</img>", "<svg role=img><title>",
    b"\xff\xfe<\x00i\x00m\x00g\x00>\x00", b"<img alt='caf\xe9'>", "<img src='http://[::1' srcset=', ,'>",
    "<map><area href>" * 3, "<div role>" * 200,
], ids=lambda html: repr(html)[:30])
def test_garbage_does_not_crash(html):
    findings = check_page(html, PAGE)
    assert all(isinstance(f, Finding) and f.rule in RULES for f in findings)


def test_bytes_are_decoded_with_the_declared_charset():
    utf8 = only('<meta charset="utf-8"><img src="a.png" alt="Café_terrasse.jpg">'.encode())
    latin1 = only('<meta charset="iso-8859-1"><img src="a.png" alt="Café_terrasse.jpg">'.encode("latin-1"))
    assert utf8.current_alt == latin1.current_alt == "Café_terrasse.jpg"


def test_page_without_images_returns_nothing():
    assert check_page("<html><head><title>Hi</title></head><body><h1>Hello</h1><p>No images.</p></body></html>",
                      PAGE) == []


def test_findings_come_in_document_order():
    html = '<img src="1.png"><div role="img"></div><p><input type="image" src="2.png"></p><img src="3.png">'
    assert rules(html) == ["image-alt", "role-img-alt", "input-image-alt", "image-alt"]


# --- Issue 22: the markup rules agree with W3C ACT -------------------------------------------------------------------

@pytest.mark.parametrize("html", [
    '<img src="w3c.png" alt="W3C logo">',  # ACT 8fc3b6 and 23a2a8 name this image "W3C logo"
    '<div role="img" aria-label="W3C"></div>',
    '<span id="label">W3C logo</span> <object aria-labelledby="label" data="/test-assets/shared/w3c-logo.png">'
    "</object>",  # ACT 8fc3b6 passed example 3
    '<img src="a.png" alt="3M">', '<img src="a.png" alt="F1 car">', '<img src="a.png" alt="7-Eleven">',
    '<img src="a.png" alt="MP3 player">', '<img src="a.png" alt="4K TV">', '<img src="a.png" alt="H2O">',
])
def test_names_with_digits_are_words(html):
    assert rules(html) == []


@pytest.mark.parametrize("alt, expected", [
    ("W3C", None), ("3M", None), ("a1", "alt-stopwords-only"), ("the 2024", "alt-stopwords-only"),
    ("IMG3", "alt-placeholder"), ("icon-24", "alt-placeholder"),
])
def test_digits_do_not_make_a_stop_word_a_word(alt, expected):
    assert suspicious_reason(alt) == expected


W3C_LOGO = '<img src="/test-assets/shared/w3c-logo.png" alt="W3C logo" />'
ACT_OBJECT = {  # ACT rule 8fc3b6 (Object element rendering non-text content has non-empty accessible name)
    "passed 1: audio, aria-label": ('<object aria-label="Moon speech" data="/a/moon-speech.mp3"></object>', []),
    "passed 2: video, title": ('<object title="Rabbit animated short" data="/v/video.mp4"></object>', []),
    "failed 1: audio, no name": ('<object data="/a/moon-speech.mp3"></object>', ["object-alt"]),
    "failed 2: video, empty title": ('<object title="" data="/v/video.mp4"></object>', ["object-alt"]),
    "failed 3: labelled by an empty span": ('<span id="label"></span> <object aria-labelledby="label" '
                                            'data="/test-assets/shared/w3c-logo.png"></object>', ["object-alt"]),
    "failed 4: labelled by a missing id": ('<object aria-labelledby="download" data="/a/moon-speech.mp3"></object>',
                                           ["object-alt"]),
    "failed 5: an image in an image's fallback does not name it": (
        f'<object data="/test-assets/shared/w3c-logo.png">{W3C_LOGO}</object>', ["object-alt"]),
    "failed 6: alt does not name an object": ('<object data="/a/moon-speech.mp3" alt="Moon speech"></object>',
                                              ["object-alt"]),
    "inapplicable 2: display none": ('<object data="/v/video.mp4" style="display: none;"></object>', []),
    "inapplicable 4: aria-hidden": ('<object data="/test-assets/shared/w3c-logo.png" aria-hidden="true"></object>',
                                    []),
    "inapplicable 5: role=presentation": ('<object type="image/png" role="presentation" data="/c/example.png">'
                                          "</object>", []),
    "inapplicable 6: an HTML resource with a title": ('<object title="My University" data="/shared/index.html">'
                                                      "</object>", []),
    "inapplicable 8: fails to load, its image fallback shows": (
        f'<object data="/invalid/url/index.html">{W3C_LOGO}</object>', []),
    # Beyond ACT's examples: what decides "judged by its fallback" without loading the data.
    "unknown type, named image in the fallback": (f'<object data="/embed?id=3">{W3C_LOGO}</object>', []),
    "an HTML data: URL, named image in the fallback": (f'<object data="data:text/html,x">{W3C_LOGO}</object>', []),
    "an image data: URL whatever the type attribute says": (
        f'<object data="data:image/png;base64,AAAA" type="text/html">{W3C_LOGO}</object>', ["object-alt"]),
    "an HTML resource with only text as fallback (axe object-alt violation3)": (
        '<object data="/shared/index.html">This object has text.</object>', ["object-alt"]),
    "an HTML resource whose fallback image has no name": ('<object data="/shared/index.html"><img src="w.png">'
                                                          "</object>", ["object-alt", "image-alt"]),
    "a hidden fallback image does not count": ('<object data="/shared/index.html"><img src="w.png" alt="W3C logo" '
                                               'hidden></object>', ["object-alt"]),
}


@pytest.mark.parametrize("html, expected", ACT_OBJECT.values(), ids=ACT_OBJECT.keys())
def test_objects_agree_with_act_8fc3b6(html, expected):
    assert rules(html) == expected


# --- Graphics screen readers skip: canvas and role-less inline svg without a name (ACT e88epe) -------------------

SCRIPT = "<script>draw()</script>"  # a canvas shows something only where a script can draw on it
W3C_SVG = '<svg viewBox="0 0 120 60"{attrs}>{inner}<text x="10" y="40">W3C</text></svg>'

GRAPHICS = {
    # fires: visible, in the accessibility tree, no name, big enough, outside any control
    "unnamed canvas": (f'<canvas width="200" height="60"></canvas>{SCRIPT}', ["graphic-unnamed"]),
    "canvas of the default size": (f"<canvas></canvas>{SCRIPT}", ["graphic-unnamed"]),
    "role-less svg with content": (W3C_SVG.format(attrs="", inner=""), ["graphic-unnamed"]),
    "svg icon alone": ('<svg width="24" height="24"><path d="M0 0h24v24H0z"/></svg>', ["graphic-unnamed"]),
    "svg with an empty title": (W3C_SVG.format(attrs="", inner="<title> </title>"), ["graphic-unnamed"]),
    "svg aria-labelledby to nothing": (W3C_SVG.format(attrs=' aria-labelledby="gone"', inner=""),
                                       ["graphic-unnamed"]),
    "svg using a sprite, outside controls": ('<svg style="display:none"><symbol id="i"><path d="M0 0h9v9z"/>'
                                             '</symbol></svg><p><svg width="48" height="48"><use href="#i"/></svg>'
                                             "</p>", ["graphic-unnamed"]),
    "svg in a link without href": (f'<a name="top">{W3C_SVG.format(attrs="", inner="")}</a>', ["graphic-unnamed"]),
    # named (accname: aria-labelledby, aria-label, an svg's <title> child, the title attribute)
    "svg with title": (W3C_SVG.format(attrs="", inner="<title>W3C</title>"), []),
    "svg with aria-label": (W3C_SVG.format(attrs=' aria-label="W3C"', inner=""), []),
    "svg aria-labelledby": ('<h2 id="h">W3C</h2>' + W3C_SVG.format(attrs=' aria-labelledby="h"', inner=""), []),
    "svg title attribute": (W3C_SVG.format(attrs=' title="W3C"', inner=""), []),
    "canvas with aria-label": (f'<canvas aria-label="Sales by region"></canvas>{SCRIPT}', []),
    "canvas title attribute": (f'<canvas title="Sales by region"></canvas>{SCRIPT}', []),
    # a canvas's fallback content is exposed in its place (HTML): text, or an image with a name
    "canvas with fallback text": (f"<canvas><p>Sales rose 20% in 2024</p></canvas>{SCRIPT}", []),
    "canvas with a named fallback image": (f'<canvas><img src="c.png" alt="Sales chart"></canvas>{SCRIPT}', []),
    # not in the accessibility tree, or not shown
    "aria-hidden svg": (W3C_SVG.format(attrs=' aria-hidden="true"', inner=""), []),
    "svg under aria-hidden": (f'<div aria-hidden="true">{W3C_SVG.format(attrs="", inner="")}</div>', []),
    "hidden canvas": (f'<canvas style="display: none"></canvas>{SCRIPT}', []),
    "canvas with hidden attribute": (f"<canvas hidden></canvas>{SCRIPT}", []),
    "invisible svg": (W3C_SVG.format(attrs=' style="visibility:hidden"', inner=""), []),
    "svg in a template": (f'<template>{W3C_SVG.format(attrs="", inner="")}</template>', []),
    # role none/presentation, or another role: not this rule's (svg-img-alt, role-img-alt, or not an image)
    "svg role=none": (W3C_SVG.format(attrs=' role="none"', inner=""), []),
    "svg role=presentation": (W3C_SVG.format(attrs=' role="presentation"', inner=""), []),
    "canvas role=img unnamed": (f'<canvas role="img"></canvas>{SCRIPT}', ["role-img-alt"]),
    "svg role=img unnamed": (W3C_SVG.format(attrs=' role="img"', inner=""), ["svg-img-alt"]),
    # too small, repeated, drawing nothing: probably decorative
    "tiny canvas": (f'<canvas width="16" height="16"></canvas>{SCRIPT}', []),
    "tiny svg": ('<svg width="16" height="16"><path d="M0 0h16v16H0z"/></svg>', []),
    "canvas on a page without script": ('<canvas width="200" height="60"></canvas>', []),
    "sprite sheet": ('<svg width="0" height="0"><defs><symbol id="i"><path d="M0 0h9v9z"/></symbol></defs></svg>',
                     []),
    "empty svg": ("<svg></svg>", []),
    "svg with a shape of no size": ("<svg><rect></rect></svg>", []),
    "icon before its label": ('<p><svg width="24" height="24"><path d="M0 0h24v24H0z"/></svg> Call us</p>', []),
    "repeated icon": ("<ul>" + '<li><svg width="40" height="40"><path d="M0 0h9v9z"/></svg><b>x</b></li>' * 5
                      + "</ul>", []),
    # its parts speak: a named or role=img part (svg-img-alt passes 6-10, violation 10)
    "svg with a named part": ('<svg><circle role="graphics-symbol" cx="50" cy="50" r="40" aria-label="Sun">'
                              "</circle></svg>", []),
    "svg with an unnamed role=img part": ('<svg><circle role="img" cx="50" cy="50" r="40"></circle></svg>',
                                          ["svg-img-alt"]),
    # in a control or under a name from author: decorative by context, or the control's own finding
    "svg icon in a named button": ('<button aria-label="Search"><svg width="24" height="24">'
                                   '<path d="M0 0h24v24H0z"/></svg></button>', []),
    "svg icon beside a button's text": ('<button><svg viewBox="0 0 24 24"><path d="M0 0h24v24H0z"/></svg> Search'
                                        "</button>", []),
    "sprite use in a named link": ('<a href="/" title="Home"><svg viewBox="0 0 24 24"><use href="#home"/></svg></a>',
                                   []),
    "svg alone in an unnamed button": ('<button><svg viewBox="0 0 24 24"><path d="M0 0h24v24H0z"/></svg></button>',
                                       ["button-name"]),
    "canvas in a link": (f'<a href="/chart"><canvas></canvas> Chart</a>{SCRIPT}', []),
    "svg under a named group": (f'<div role="group" aria-label="W3C">{W3C_SVG.format(attrs="", inner="")}</div>',
                                []),
    "svg inside role=img": (f'<div role="img" aria-label="W3C">{W3C_SVG.format(attrs="", inner="")}</div>', []),
}


@pytest.mark.parametrize("html, expected", GRAPHICS.values(), ids=GRAPHICS.keys())
def test_unnamed_graphics(html, expected):
    """ACT e88epe's "ignored svg" and "ignored canvas": visible, in the accessibility tree, with an empty
    accessible name; not under an ancestor named from author (nor in a control: decorative by context, or the
    control's finding). Severity "needs review": whether the graphic carries information, a person says."""
    assert rules(html) == expected


def test_an_unnamed_graphic_finding():
    f = only(f'<div id="chart"><canvas width="400" height="200"></canvas></div>{SCRIPT}')
    assert (f.rule, f.severity, f.wcag) == ("graphic-unnamed", "needs review", WCAG_1_1_1)
    assert f.selector == "#chart > canvas" and f.image_url is None and f.current_alt is None
    assert "e88epe" in f.message and 'aria-hidden="true"' in f.message and 'role="img"' in f.message
    svg = only(W3C_SVG.format(attrs="", inner=""))
    assert "<title>" in svg.message and svg.image_url is None  # pixels only for the judgements (suggestions on)


# --- What each image's markup says, for the image judgements (RuleOptions.judge_images) -------------------------

JUDGED_PAGE = """<img src="/a.png" alt="">
<img src="/b.png" alt="banner">
<a href="/x"><img id="alone" src="/logo.png" alt=""></a>
<a href="/y"><img id="beside" src="/icon.png" alt=""> Home</a>
<button><img id="in-button" src="/search.png" role="presentation"></button>
<div aria-hidden="true"><img id="aria" src="/hidden.png"></div>
<div style="display:none"><img src="/none.png" alt=""></div>
<div hidden><span aria-hidden="true"><img src="/none2.png" alt=""></span></div>
<figure><img id="chart" src="/chart.png" alt=""><figcaption>Sales by region</figcaption></figure>
<input type="image" src="/go.png" alt="Go">
<img src="/tiny.png" width="10" height="10" alt="">
<img src="/spacer.gif" alt="">
<svg role="img"><title>A circle</title><circle r="3"></circle></svg>"""


def contexts(html: str, **options):
    from server.audit.rules import audit_page

    return {c.image_url.rsplit("/", 1)[-1]: c
            for c in audit_page(html, PAGE, RuleOptions(judge_images=True, **options)).images_to_judge}


def test_image_contexts_say_name_hidden_control_and_nearby_text():
    found = contexts(JUDGED_PAGE)
    # Every image with a file, failing or not; not tiny or spacer images, not images that are not shown; a named
    # svg by its reference (its pixels, rasterised, are judged against its name).
    from server.audit.graphics import rsvg_convert

    svgs = [found.pop(k) for k in list(found) if found[k].graphic]
    assert len(svgs) == (rsvg_convert() is not None)  # its pixels come from rsvg-convert
    for svg in svgs:
        assert (svg.name, svg.decorative, svg.selector) == ("A circle", False, "html > body > svg")
        assert svg.image_url == PAGE + "#selector(type=CssSelector,value=html%20%3E%20body%20%3E%20svg)"
    assert sorted(found) == sorted(["a.png", "b.png", "logo.png", "icon.png", "search.png", "hidden.png",
                                    "chart.png", "go.png"])
    assert (found["a.png"].name, found["a.png"].decorative, found["a.png"].control) == ("", True, None)
    assert (found["b.png"].name, found["b.png"].decorative) == ("banner", False)
    assert (found["logo.png"].control, found["logo.png"].control_named) == ("link", False)
    assert (found["icon.png"].control, found["icon.png"].control_named) == ("link", True)
    assert found["icon.png"].nearby_text == "Home"  # the link's text and its neighbour, said once
    assert (found["search.png"].decorative, found["search.png"].control, found["search.png"].control_named) == \
        (True, "button", False)
    assert found["hidden.png"].decorative and found["hidden.png"].name is None  # aria-hidden: the rules skip it
    assert found["chart.png"].nearby_text == "Sales by region"
    assert (found["go.png"].control, found["go.png"].control_named, found["go.png"].decorative) == \
        ("button", True, False)  # an image button is its own control
    assert found["logo.png"].selector.endswith("#alone") and found["logo.png"].page_url == PAGE
    assert found["logo.png"].image_url == "https://example.com/logo.png"
    assert found["logo.png"].snippet.startswith("<img")


def test_image_contexts_cost_nothing_without_suggestions_and_change_no_finding():
    from server.audit.rules import audit_page

    plain, judged = audit_page(JUDGED_PAGE, PAGE), audit_page(JUDGED_PAGE, PAGE, RuleOptions(judge_images=True))
    assert plain.images_to_judge == [] and judged.images_to_judge
    assert plain.findings == judged.findings and plain.images == judged.images


def test_image_contexts_skip_repeated_images_and_cut_nearby_text():
    repeated = "".join(f'<img src="/star.png" alt="" aria-hidden="{i % 2 == 0}">' for i in range(6))
    assert "star.png" not in contexts(repeated + '<img src="/one.png" alt="">')
    long_text = "<p><img src='/p.png' alt=''>" + "word " * 2000 + "</p>"
    assert len(contexts(long_text, nearby_chars=50)["p.png"].nearby_text) == 50


def test_image_contexts_of_a_page_over_budget_are_not_collected():
    from server.audit.rules import audit_page

    check = audit_page("<img src='/a.png' alt=''>" * 40, PAGE, RuleOptions(judge_images=True, max_elements=10))
    assert check.over_budget and check.images_to_judge == []
