"""What a page's own markup calls an icon (server/describe/markup.py): which names in a class attribute, a ligature,
a sprite reference or a file name name a glyph, what the vocabulary makes of them, and when the decision says them.
The audit's collection of those names runs on the vectors the extension runs too (tests/vectors/markup.json).
Fast: no captioner is loaded."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from server.audit.rules import CONTROL_RULES, check_page
from server.audit.suggest import Suggester, markup_suggestion
from server.describe.markup import KEYS, MAX_CHARS, MarkupError, check_markup, markup_name
from server.describe.pipeline import RESULT_FIELDS
from server.describe.pixels import PixelStats
from test_meanings import icon_evidence, said  # the same evidence and decision the meaning tests use


def named(markup: dict) -> str | None:
    found = markup_name(check_markup(markup))
    return found and found.meaning.key


@pytest.mark.parametrize("markup, key", [
    # icon fonts' and svg sets' classes: the glyph's class, not the style, size or animation beside it
    ({"class": "fa-solid fa-magnifying-glass fa-fw"}, "meaning:search"),
    ({"class": "fa fa-2x fa-spin fa-bars"}, "meaning:menu"),
    ({"class": "fa-brands fa-github"}, "brand:github"),
    ({"class": "fab fa-x-twitter"}, "brand:x"),
    ({"class": "bi bi-cart3"}, "meaning:cart"),
    ({"class": "bi bi-arrow-right-circle-fill"}, "meaning:arrow-right"),
    ({"class": "lucide lucide-menu"}, "meaning:menu"),
    ({"class": "feather feather-x"}, "meaning:close"),
    ({"class": "octicon octicon-mark-github"}, "brand:github"),
    ({"class": "mdi mdi-24px mdi-bell"}, "meaning:notifications"),
    ({"class": "ion-md-close"}, "meaning:close"),  # Ionicons 4's platform word
    ({"class": "ion-logo-twitter"}, "brand:twitter"),
    ({"class": "glyphicon glyphicon-trash"}, "meaning:delete"),
    ({"class": "icon icon--search"}, "meaning:search"),  # a site's own BEM icon classes
    ({"class": "icon-left fa fa-search"}, "meaning:search"),  # a set's own class before a site's generic one
    ({"class": "pi-bold pi-home"}, "meaning:home"),  # a weight class some sets put beside the glyph's ...
    ({"class": "fa-solid fa-bold"}, "meaning:bold"),  # ... unless it is the only name there is
    # ligatures, sprites and icon attributes
    ({"ligature": "shopping_cart"}, "meaning:cart"),
    ({"ligature": "more_vert"}, "meaning:more-vertical"),
    ({"symbol": "#icon-close"}, "meaning:close"),
    ({"symbol": "/img/sprite.svg#search"}, "meaning:search"),
    ({"symbol": "mdi:home"}, "meaning:home"),  # Iconify's <iconify-icon icon="mdi:home">
    ({"symbol": "house"}, "meaning:home"),  # Font Awesome's <svg data-icon="house">
    ({"symbol": "wi-fi"}, "meaning:wifi"),
    # file names, with the sizes, colours and hashes build tools add
    ({"file": "/static/ic_search_black_24dp.svg?v=2"}, "meaning:search"),
    ({"file": "https://cdn.example/a/home.3f9a2b.png"}, "meaning:home"),
    ({"file": "icons/twitter.svg"}, "brand:twitter"),
    # the first source that names a glyph wins, in the order KEYS trusts them
    ({"class": "material-symbols-outlined", "ligature": "search"}, "meaning:search"),
    ({"ligature": "menu", "file": "search.svg"}, "meaning:menu"),
])
def test_names_icon_sets_give_glyphs_name_their_meaning(markup, key):
    assert named(markup) == key


@pytest.mark.parametrize("markup", [
    {"class": "btn btn-primary nav-link"},  # no icon set's prefix
    {"class": "fa fa-stack fa-lg fa-fw fa-spin fa-rotate-90 fa-pull-right"},  # utilities only
    {"class": "material-icons"},  # the font's class: its ligature names the glyph
    {"class": "icon-link icon-button"},  # what holds an icon (Bootstrap's icon-link), not which
    # where, how big and in which state a site's icon is: no glyph
    {"class": "icon-medium icon-disabled icon-hidden icon-visible icon-selected icon-muted icon-left icon-block"},
    {"class": "icon-title icon-group icon-new icon-text-left icon-is-small"},
    {"file": "http://[x/home.png"},  # no URL at all
    {"ligature": "two words"},
    {"symbol": "#sprite-17"},
    {"file": "hero-banner.jpg"}, {"file": "IMG_1234.jpg"}, {"file": "logo.png"},
    {"file": "x.svg"},  # a name this short, from a file, may be anything
    {"file": "/uploads/photo.png"}, {"file": "picture.jpg"},  # a picture, not a picture's icon
    {},
])
def test_names_that_are_no_glyph_name_nothing(markup):
    assert named(markup) is None


def test_markup_is_checked_as_a_request_gives_it():
    assert check_markup({"class": "  fa-solid fa-house ", "symbol": ""}) == {"class": "fa-solid fa-house"}
    for bad, says in [("fa-house", "object"), ({"href": "#x"}, "only"), ({"class": 3}, "string"),
                      ({"class": "a" * (MAX_CHARS + 1)}, "longer")]:
        with pytest.raises(MarkupError, match=says):
            check_markup(bad)
    assert set(KEYS) == {"class", "ligature", "symbol", "file"}


def test_a_markup_name_names_the_icon_and_its_control_and_says_where_it_came_from():
    r = said(icon_evidence(), markup={"class": "fa-solid fa-magnifying-glass"})
    assert r["alt"] == "Icon: Search." and r["kind"] == "icon" and r["control_name"] == "Search"
    assert r["meaning"] == {"id": "search", "label": "Search", "p": 1.0, "source": "markup"}
    assert list(r) == list(RESULT_FIELDS)
    r = said(icon_evidence(kind="illustration"), markup={"class": "fa-brands fa-github"})  # a brand makes it a logo
    assert r["alt"] == "Logo: GitHub." and r["kind"] == "logo" and r["brand"]["source"] == "markup"
    # the glyph's name outranks the meaning head, which is not always right on a design it has never seen
    ev = icon_evidence()
    ev.meaning_probs, ev.meaning_labels, ev.meaning_threshold = {"meaning:close": 0.97}, {"meaning:close": "Close"}, 0.9
    assert said(ev, markup={"ligature": "search"})["alt"] == "Icon: Search."
    assert said(ev)["meaning"] == {"id": "close", "label": "Close", "p": 0.97, "source": "image"}


def test_markup_is_not_said_over_a_photo_or_nothing():
    assert said(icon_evidence(kind="photo"), markup={"class": "fa-house"})["meaning"] is None  # a photo is captioned
    r = said(icon_evidence(pixels=PixelStats(1, 1, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0)), markup={"class": "fa-house"})
    assert r["alt"] is None and r["reason"] == "blank"
    # a kind that is no photo, but no icon either: the glyph's own name still holds (an icon font's "B" is bold)
    assert said(icon_evidence(kind="text"), markup={"class": "fa-solid fa-bold"})["alt"] == "Icon: Bold."


def test_an_image_files_names_need_pixels_that_show_an_icon():
    assert said(icon_evidence(kind="icon"), markup={"file": "/img/home.svg"})["alt"] == "Icon: Home."
    assert said(icon_evidence(kind="screenshot"), markup={"file": "/img/settings.png"})["meaning"] is None
    assert said(icon_evidence(kind="photo"), markup={"file": "/img/home.jpg"})["meaning"] is None
    # its classes too: <img class="icon-user" src="sign-in.png"> may be a picture of a sign-in form
    sign_in = {"class": "icon-user", "file": "sign-in.png"}
    assert said(icon_evidence(kind="screenshot"), markup=sign_in)["meaning"] is None
    assert said(icon_evidence(kind="icon"), markup=sign_in)["alt"] == "Icon: Account."
    assert markup_name({"class": "icon-user", "file": "sign-in.png"}, without_pixels=True) is None


def test_without_a_known_name_the_image_decides_as_before():
    for markup in (None, {}, {"class": "btn"}):
        assert said(icon_evidence(), markup=markup)["alt"] == "Icon."


# -- the shared vectors: what the page's code calls a control's icon ---------------------------------------------

VECTORS = json.loads((Path(__file__).parent / "vectors" / "markup.json").read_text(encoding="utf-8"))["cases"]
PAGE = "https://site.test/page.html"


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_the_audit_collects_the_shared_vectors_markup_and_the_service_names_it(case):
    page = f'<!doctype html><html lang=en><body><div class="page icon-left">{case["html"]}</div></body></html>'
    findings = check_page(page, PAGE)
    (control,) = [f for f in findings if f.selector == "#c"]
    assert control.rule in CONTROL_RULES + ("input-image-alt",) and control.icon
    assert control.markup == case["markup"]
    assert named(case["markup"] or {}) == case["meaning"]
    found = markup_name(check_markup(case["markup"] or {}), without_pixels=True)
    assert (found and found.meaning.key) == case.get("without_pixels", case["meaning"])


def test_the_extension_runs_the_same_vectors():
    text = (Path(__file__).parents[1] / "tests" / "test_extension_unit.py").read_text()
    assert "vectors\" / \"markup.json\"" in text or "vectors/markup.json" in text


def test_the_audit_suggests_the_name_the_markup_gives_without_the_model():
    finding = asdict(next(f for f in check_page(
        '<button class="btn"><i class="fa-solid fa-cart-shopping" aria-hidden="true"></i></button>', PAGE)))
    s = markup_suggestion(finding)
    assert s == {"kind": "name", "name": "Shopping cart", "attribute": "aria-label", "source": "markup",
                 "message": 'Suggested aria-label="Shopping cart", from the name the page\'s code gives the icon '
                            '(class "cart-shopping"): check that it says what the control does.'}
    assert Suggester(None, None).suggestion_for(finding, {}) == s  # no model, and no image file, needed
    # an image's file name waits for its pixels; a finding that is no control's icon gets nothing from markup
    (img_button,) = check_page('<input type="image" src="/i/home.png" width="24" height="24">', PAGE)
    assert img_button.markup == {"file": "/i/home.png"} and markup_suggestion(asdict(img_button)) is None
    assert markup_suggestion({**finding, "icon": None}) is None
    assert markup_suggestion({**finding, "markup": {"class": 3}}) is None  # a hand-edited state file: no crash


def test_an_icon_web_component_is_a_controls_icon_named_by_its_attribute():
    """<sl-icon name="gear"> in an unnamed button: an icon (it draws an svg in its shadow root, which the static page
    does not show), named by its attribute without the model; an element that is no icon component is no icon."""
    (finding,) = check_page('<button class="btn"><sl-icon name="gear"></sl-icon></button>', PAGE)
    assert (finding.rule, finding.icon, finding.markup) == ("button-name", "icon-element", {"class": "btn", "symbol": "gear"})
    assert "(an icon web component (<ion-icon>" in finding.message
    assert markup_suggestion(asdict(finding))["name"] == "Settings"
    (other,) = check_page('<button><my-widget name="gear"></my-widget></button>', PAGE)
    assert (other.icon, other.markup) == (None, None)


def test_eval_markup_counts_the_glyphs_a_sets_markup_names(tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "scripts"))
    import eval_markup

    icons = tmp_path / "bootstrap-icons" / "icons"
    icons.mkdir(parents=True)
    for name in ("search", "cart3", "list", "activity-xyz"):
        (icons / f"{name}.svg").write_text("<svg/>")
    (tmp_path / "cache" / "npm").mkdir(parents=True)
    (tmp_path / "cache" / "npm" / "node_modules").symlink_to(tmp_path)
    out = tmp_path / "table.json"
    assert eval_markup.main(["--icons", str(tmp_path / "cache"), "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == {"bootstrap": {"glyphs": 4, "named": 0.75, "common_meanings_drawn": 3}}
    with pytest.raises(SystemExit):
        eval_markup.main(["--icons", str(tmp_path / "nowhere")])
