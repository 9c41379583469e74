"""Buttons and links without a name (the audit's button-name and link-name, axe-core's semantics widened to role=button
and role=link as ACT's rules 97a4e1 and c487ae are): which controls are checked, what names them, what the finding
says about an icon that is a control's only content, and the control name suggested for such an icon from the
describe pipeline's ``control_name``. Cases marked ACT are the examples of those two ACT rules."""
from __future__ import annotations

import time

import jsonschema
import pytest
from PIL import Image

from server.audit.report import SCHEMA
from server.audit.rules import ICONS, WCAG_2_4_4, WCAG_4_1_2, check_page
from server.audit.suggest import NO_CONTROL_NAME, NO_ICON_FILE, NOTHING_SHOWN, LoadedImage, Suggester

PAGE = "https://example.com/shop/index.html"
LOGO = "/test-assets/shared/w3c-logo.png"


def rules(html: str) -> list[str]:
    return [f.rule for f in check_page(html, PAGE)]


# --- Which controls have a name ------------------------------------------------------------------------------------

NAMED = {
    "button text": "<button>Search</button>",
    "button text beside an icon": '<button><i class="fa-solid fa-magnifying-glass"></i> Search</button>',
    "button aria-label (author's)": '<button aria-label="Open the menu"><i class="fa fa-bars"></i></button>',
    "button aria-labelledby a hidden element": '<span id="l" hidden>Your cart</span>'
                                               '<button aria-labelledby="l"><i class="fa fa-cart"></i></button>',
    "button title": '<button title="Close"><svg><path d="M0 0"/></svg></button>',
    "button label for": '<label for="b">Settings</label><button id="b"><i class="bi bi-gear"></i></button>',
    "button inside its label": "<label>Settings <button></button></label>",
    "button svg with a title": "<button><svg><title>Close</title><path d='M0 0'/></svg></button>",
    "button visually hidden text": '<button><i class="bi bi-x"></i><span class="sr-only">Close</span></button>',
    "button material ligature read as text": '<button><span class="material-icons">menu</span></button>',
    "button role=presentation disabled (axe pass1)": '<button role="presentation" disabled></button>',
    "ACT button: span role=button aria-label": '<span role="button" aria-label="My button"></span>',
    "ACT button: disabled with text": "<button disabled>Delete</button>",
    "ACT button: role=none disabled": '<button role="none" disabled></button>',
    "ACT button: display none": '<button style="display: none;"></button>',
    "ACT button: input type=image is the image rules'": '<input type="image" src="d.png" alt="Download">',
    "ACT link: text": '<a href="https://www.w3.org/WAI"> Web Accessibility Initiative (WAI) </a>',
    "ACT link: div role=link with text": '<div role="link" tabindex="0">Web Accessibility Initiative</div>',
    "ACT link: img aria-label": f'<a href="/wai"><img src="{LOGO}" aria-label="Web Accessibility Initiative"></a>',
    "ACT link: title, decorative image": f'<a href="/wai" title="Web Accessibility Initiative"><img src="{LOGO}" '
                                         'alt=""></a>',
    "ACT link: img title": f'<a href="/wai"><img src="{LOGO}" title="Web Accessibility Initiative"></a>',
    "ACT link: decorative image and text": f'<a href="/wai"><img src="{LOGO}" alt="">WAI</a>',
    "ACT link: img aria-labelledby": f'<a href="/wai"><img src="{LOGO}" aria-labelledby="i"></a>'
                                     '<div id="i">Web Accessibility Initiative</div>',
    "ACT link: doc-biblioref with text": '<a href="https://act-rules.github.io/" role="doc-biblioref">ACT rules</a>',
    "ACT link: aria-hidden": '<a aria-hidden="true" href="/wai"></a>',
    "ACT link: visibility hidden": '<a href="/wai" style="visibility: hidden;"></a>',
    "link with an image alt": f'<a href="/"><img src="{LOGO}" alt="W3C"></a>',
    "link with a nested button's name": '<a href="/"><button>Go</button></a>',
    "link with a submit input's default name": '<a href="/"><input type="submit"></a>',
    "a without href is no link": "<a><img src='x.png' alt=''></a>",
    "text in a link's svg": "<a href='/'><svg><text x='0' y='10'>Home</text></svg></a>",
    "button in a template is inert": "<template><button></button></template>",
}


@pytest.mark.parametrize("html", NAMED.values(), ids=NAMED.keys())
def test_controls_with_a_name_get_no_control_finding(html):
    assert not {"button-name", "link-name"} & set(rules(html))


UNNAMED = {
    "ACT button: empty": ("<button></button>", "button-name", None),
    "ACT button: value is not a name": ('<button type="button" value="read more"></button>', "button-name", None),
    "ACT button: span role=button": ('<span role="button"></span>', "button-name", None),
    "ACT button: role=none but focusable": ('<button role="none"></button>', "button-name", None),
    "button aria-label of spaces": ('<button aria-label="  "><i class="fa fa-bars"></i></button>', "button-name",
                                    "icon-font"),
    "button with an aria-hidden glyph": ('<button><i class="fa-solid fa-house" aria-hidden="true"></i></button>',
                                         "button-name", "icon-font"),
    "button with an aria-hidden ligature": ('<button><span class="material-symbols-outlined" aria-hidden="true">'
                                            "menu</span></button>", "button-name", "icon-font"),
    "button with an inline svg": ('<button><svg viewBox="0 0 16 16"><use href="#heart"/></svg></button>',
                                  "button-name", "svg"),
    "button with a background image": ('<button style="background: url(/i/menu.png) center"></button>',
                                       "button-name", "background-image"),
    "div role=button with a glyph": ('<div role="button" tabindex="0"><i class="bi bi-gear"></i></div>',
                                     "button-name", "icon-font"),
    "ACT link: empty": ('<a href="http://www.w3.org/WAI"></a>', "link-name", None),
    "ACT link: decorative image": (f'<a href="/wai"><img src="{LOGO}" alt=""></a>', "link-name", "img-decorative"),
    "ACT link: image role=presentation": (f'<a href="/wai"><img src="{LOGO}" role="presentation"></a>', "link-name",
                                          "img-decorative"),
    "ACT link: image role=none": (f'<a href="/wai"><img src="{LOGO}" role="none"></a>', "link-name",
                                  "img-decorative"),
    "ACT link: image with an empty title": (f'<a href="/wai"><img src="{LOGO}" title=""></a>', "link-name", "img"),
    "ACT link: image labelled by an empty div": (f'<a href="/wai"><img src="{LOGO}" aria-labelledby="e"></a>'
                                                 '<div id="e"></div>', "link-name", "img"),
    "ACT link: image labelled by a missing id": (f'<a href="/wai"><img src="{LOGO}" aria-labelledby="e"></a>',
                                                 "link-name", "img"),
    "ACT link: off screen, image without alt": (f'<a href="/wai" style="left: -9999px; position: absolute;">'
                                                f'<img src="{LOGO}"></a>', "link-name", "img"),
    "ACT link: role=none but focusable": ('<a href="/wai" role="none"> </a>', "link-name", None),
    "ACT link: doc-biblioref, decorative image": (f'<a href="/" role="doc-biblioref"><img src="{LOGO}" alt=""></a>',
                                                  "link-name", "img-decorative"),
    "span role=link": ('<span role="link" tabindex="0"></span>', "link-name", None),
    "link with an icon-font glyph": ('<a href="https://github.com/"><i class="fa-brands fa-github"></i></a>',
                                     "link-name", "icon-font"),
    "link whose only text is hidden": ('<a href="/"><span hidden>Home</span><svg></svg></a>', "link-name", "svg"),
    "link with a comment only": ("<a href='/'><!-- Home --></a>", "link-name", None),
}


@pytest.mark.parametrize("html, rule, icon", UNNAMED.values(), ids=UNNAMED.keys())
def test_controls_without_a_name_are_found_with_their_icon(html, rule, icon):
    (control,) = [f for f in check_page(html, PAGE) if f.rule in ("button-name", "link-name")]
    assert (control.rule, control.icon) == (rule, icon)
    assert control.severity == ("critical" if rule == "button-name" else "serious")
    assert control.wcag == (WCAG_4_1_2 if rule == "button-name" else WCAG_2_4_4)
    assert control.current_alt is None and not control.decorative_candidate
    assert control.message.startswith(("Button has no accessible name", "Link has no accessible name"))
    if icon:
        assert f"its only content is an icon ({ICONS[icon]})" in control.message


def test_the_message_says_what_to_do_for_an_icon_image():
    link, image = check_page('<a href="/cart"><img src="/i/cart.svg" width="16" height="16"></a>', PAGE)
    assert (link.rule, image.rule) == ("link-name", "image-alt")
    assert link.message == (
        "Link has no accessible name: its only content is an icon (an image without alt). Give the image an alt "
        'that says where it goes (e.g. alt="Home"), or give the link an aria-label that does.')
    # the image's own finding asks for a name, not a description, and is no decorative candidate however small
    assert image.icon == "img" and not image.decorative_candidate
    assert "only content of a button or link" in image.message
    assert link.image_url == image.image_url == "https://example.com/i/cart.svg"
    (button,) = check_page('<button><svg><path d="M0 0"/></svg></button>', PAGE)
    assert button.message == ("Button has no accessible name: its only content is an icon (an inline SVG). Give "
                              'the button an aria-label that says what it does, e.g. aria-label="Search".')
    assert button.image_url is None


@pytest.mark.parametrize("html, why", [
    ('<button aria-labelledby="gone"></button>', "aria-labelledby points to elements that are missing or empty"),
    ('<button role="presentation"></button>', 'role="presentation" does not hide it'),
    ('<button value="Send"></button>', "a button's value attribute is not its name"),
    ('<a href="/" aria-label=""></a>', "its aria-label is empty"),
])
def test_the_message_says_why_an_apparent_name_is_none(html, why):
    (finding,) = check_page(html, PAGE)
    assert why in finding.message


def test_controls_are_not_counted_as_images_and_the_page_is_linear():
    from server.audit.rules import audit_page

    check = audit_page('<a href="/"><img src="a.png"></a><button></button>', PAGE)
    assert check.images == 1 and [f.rule for f in check.findings] == ["link-name", "image-alt", "button-name"]
    # Each control's content holds all the others: what one walk learnt about the content is remembered.
    named = '<div role="button">' * 1000 + "Go" + "</div>" * 1000
    t0 = time.perf_counter()
    assert audit_page(named, PAGE).findings == []
    assert time.perf_counter() - t0 < 3.0
    empty = audit_page('<div role="button">' * 300 + "</div>" * 300, PAGE)
    assert empty.over_budget is None and len(empty.findings) == 300


def test_button_with_role_img_is_checked_as_both():
    """axe's button-name fail3: a disabled <button role="img"> needs a name as an image and as a button."""
    assert rules('<button role="img" disabled></button>') == ["role-img-alt", "button-name"]
    assert rules('<button role="gridcell" disabled></button>') == []  # axe's inapplicable2: neither


# --- Suggestions: a name from the pipeline's control_name ---------------------------------------------------------

class FakeBackend:
    """Stands for the describe pipeline: one result per image URL, as given."""
    version = "fake-1"
    cache_namespace = "fake-1:describe"

    def __init__(self, results: dict[str, dict]):
        self.results = results

    def describe(self, images: list[LoadedImage]) -> list[dict]:
        return [self.results[i.url] for i in images]

    def result(self, stored: dict) -> dict:
        return stored


class FakeSource:
    def load(self, url: str) -> LoadedImage:
        return LoadedImage(url, Image.new("RGB", (24, 24), (20, 20, 20)), url.encode())


def result(control_name, alt="Might be: a magnifying glass.", kind="icon") -> dict:
    return {"alt": alt, "kind": kind, "caption": "A magnifying glass.", "confidence": 0.8, "hedged": True,
            "withheld": alt is None, "reason": None if alt else "uncertain_kind", "control_name": control_name,
            "meaning": {"id": "search", "label": "Search", "p": 0.9} if control_name else None, "brand": None}


def suggestions(html: str, results: dict[str, dict]) -> list[tuple[str, dict | None]]:
    found = [{**f.__dict__} for f in check_page(html, PAGE)]
    out = Suggester(FakeBackend(results), FakeSource()).suggest(found)
    validator = jsonschema.Draft202012Validator(SCHEMA["properties"]["findings"]["items"])
    for f, s in zip(found, out):
        validator.validate({"id": "F1", **f, "suggestion": s})
    return [(f["rule"], s) for f, s in zip(found, out)]


ICON = "https://example.com/i/search.png"


def test_an_icon_only_link_gets_the_control_name_as_its_aria_label_and_its_image_as_alt():
    (link, s_link), (image, s_image) = suggestions('<a href="/search"><img src="/i/search.png"></a>',
                                                   {ICON: result("Search")})
    assert (link, image) == ("link-name", "image-alt")
    assert s_link == {"kind": "name", "name": "Search", "attribute": "aria-label", "model": "fake-1",
                      "image_kind": "icon", "confidence": 0.9, "message": 'Suggested aria-label="Search", from what the icon stands '
                                                       "for: check that it says what the control does."}
    assert s_image["kind"] == "name" and (s_image["name"], s_image["attribute"]) == ("Search", "alt")


def test_an_image_button_and_a_background_icon_get_the_control_name():
    page = ('<input type="image" src="/i/search.png"><button style="background-image:url(/i/menu.png)"></button>'
            '<img src="/i/photo.png">')
    menu, photo = "https://example.com/i/menu.png", "https://example.com/i/photo.png"
    out = suggestions(page, {ICON: result("Search"), menu: result("Menu"),
                             photo: result(None, alt="Appears to be: a dog on a beach.", kind="photo")})
    assert [(rule, s["kind"], s.get("name"), s.get("attribute")) for rule, s in out] == [
        ("input-image-alt", "name", "Search", "alt"), ("button-name", "name", "Menu", "aria-label"),
        ("image-alt", "caption", None, None)]
    assert out[2][1]["alt"] == "Appears to be: a dog on a beach." and "control_name" not in out[2][1]


def test_no_control_name_means_no_name_and_never_the_caption():
    ((rule, s),) = suggestions('<button><img src="/i/search.png" alt=""></button>', {ICON: result(None)})
    assert rule == "button-name"
    assert s["kind"] == "withheld" and s["alt"] is None and s["reason"] == "no_control_name"
    assert s["message"] == NO_CONTROL_NAME and "glass" not in s["message"]
    ((rule, s),) = suggestions('<a href="/"><img src="/i/search.png" alt=""></a>', {ICON: {"error": {
        "code": "upstream_status", "message": "the image server answered HTTP 404"}}})
    assert s["kind"] == "error"


def test_a_pipeline_without_control_name_suggests_no_name():
    """Before the pipeline has the field (or from an older cache entry), an icon gets no suggestion to copy."""
    old = {k: v for k, v in result("Search").items() if k not in ("control_name", "meaning", "brand")}
    ((_, s),) = suggestions('<button style="background:url(/i/search.png)"></button>', {ICON: old})
    assert s["kind"] == "withheld" and s["reason"] == "no_control_name"


def test_inline_svg_and_icon_fonts_and_empty_controls_have_nothing_to_describe():
    page = ('<button><svg><path d="M0 0"/></svg></button><a href="/"><i class="fa fa-fw fa-xyzzy"></i></a>'
            '<button></button>')
    out = suggestions(page, {})
    assert out == [("button-name", {"kind": "none", "message": NO_ICON_FILE}),
                   ("link-name", {"kind": "none", "message": NO_ICON_FILE}),
                   ("button-name", {"kind": "none", "message": NOTHING_SHOWN})]


def test_an_icon_font_the_vocabulary_knows_is_named_by_its_class():
    ((rule, s),) = suggestions('<a href="/"><i class="fa fa-home"></i></a>', {})
    assert rule == "link-name" and (s["kind"], s["name"], s["attribute"], s["source"]) == (
        "name", "Home", "aria-label", "markup")


def test_without_suggestions_a_control_finding_has_none():
    found = [{**f.__dict__} for f in check_page('<a href="/"><img src="/i/search.png"></a>', PAGE)]
    assert Suggester(None, None).suggest(found) == [None, None]
