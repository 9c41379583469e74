"""The audit's image judgements (server/audit/judge.py): each rule fires on its case and stays quiet on the correct
control beside it, and on real images the pipeline gives the evidence the rules rest on."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from server.audit.judge import ImageMarkup, agrees, judge, words_match

REPO = Path(__file__).resolve().parent.parent
KINDS = REPO / "tests" / "data" / "kinds"


def rules(markup: ImageMarkup, result: dict) -> list[str]:
    return [j.rule for j in judge(markup, result)]


def named(name: str, **kw) -> ImageMarkup:
    return ImageMarkup(name, **kw)


HIDDEN = ImageMarkup("", decorative=True)
W3C = {"kind": "logo", "text": "W3C"}
SALE = {"kind": "text", "text": "Spring sale 20% off everything"}
PAGE = {"kind": "text", "text": "Filesystem Hierarchy Standard LSB Workgroup The Linux Foundation Edited by Rusty "
                                "Russell Daniel Quinlan Christopher Yeoh Version 3.0 published March 2015"}
PHOTO_WITH_SIGN = {"kind": "photo", "text": "Main Street", "alt": "Appears to be: a man walking a dog."}
SEARCH_ICON = {"kind": "icon", "text": None, "meaning": {"id": "search", "label": "Search", "p": 0.93},
               "control_name": "Search"}
GITHUB = {"kind": "logo", "text": None, "brand": {"id": "github", "name": "GitHub", "p": 0.91},
          "control_name": "GitHub"}
BAR_CHART = {"kind": "chart", "text": "Monthly precipitation Bergen",
             "chart_type": {"id": "bar", "label": "Bar chart", "p": 0.97}}
SCREENSHOT = {"kind": "screenshot", "text": "Dolphin Preferences"}


# ---------------------------------------------------------------------------------------------------------------
# Name that contradicts the image (ACT qt1vmo)


@pytest.mark.parametrize("name", ["W3C logo", "W3C", "w3c", "W3 C", "World Wide Web Consortium",
                                  "Logo of the W3C", "W3C: World Wide Web Consortium"])
def test_a_logo_named_by_its_own_text_is_not_contradicted(name):
    assert rules(named(name), W3C) == []


@pytest.mark.parametrize("name", ["ERCIM logo", "Mozilla"])
def test_a_logo_named_for_something_it_does_not_say_is_contradicted(name):
    found = judge(named(name), W3C)
    assert [j.rule for j in found] == ["image-name-contradicts-text"]
    assert found[0].act == "qt1vmo" and found[0].severity == "needs review"
    assert found[0].evidence == {"kind": "logo", "text": "W3C"} and found[0].suggestion == "W3C logo"
    assert "W3C" in found[0].message and name in found[0].message


@pytest.mark.parametrize("name", ["banner", "Banner image", "Promotional banner", "logo", "Header graphic"])
def test_a_name_that_says_nothing_omits_the_banners_message(name):
    found = [j for j in judge(named(name), SALE) if j.rule == "image-name-contradicts-text"]
    assert len(found) == 1 and found[0].suggestion == "Spring sale 20% off everything"
    assert "says nothing" in found[0].message


@pytest.mark.parametrize("name", ["Spring sale: 20% off everything", "Spring sale, twenty percent off everything",
                                  "20 % off", "Everything is reduced in our spring sale"])
def test_a_banner_named_by_its_text_or_part_of_it_is_not_contradicted(name):
    assert "image-name-contradicts-text" not in rules(named(name), SALE)


def test_a_banner_named_for_something_else_is_contradicted():
    assert "image-name-contradicts-text" in rules(named("Summer collection"), SALE)


@pytest.mark.parametrize("ocr", ["Sprlng sale 2O% off", "pring sal", "SPRING SALE", "Spring  sale\u00a020%"])
def test_misread_or_partial_ocr_still_agrees_with_the_right_name(ocr):
    assert "image-name-contradicts-text" not in rules(named("Spring sale: 20% off everything"),
                                                     {"kind": "text", "text": ocr})


def test_a_page_of_text_is_summarised_not_contradicted():
    """A true name of a page need not repeat its words; only a name that says nothing is judged."""
    assert "image-name-contradicts-text" not in rules(named("Cover of the standard for Unix directories"), PAGE)
    assert "image-name-contradicts-text" in rules(named("image"), PAGE)


@pytest.mark.parametrize("result", [BAR_CHART, SCREENSHOT])
def test_a_chart_or_screenshot_title_is_one_part_a_true_name_may_leave_out(result):
    assert "image-name-contradicts-text" not in rules(named("Rainfall by month in a Norwegian city"), result)
    assert "image-name-contradicts-text" in rules(named("chart"), result)


def test_text_in_a_photo_is_not_what_the_photo_is_about():
    assert rules(named("A man walking a dog"), PHOTO_WITH_SIGN) == []
    assert rules(named("photo"), PHOTO_WITH_SIGN) == []
    assert rules(HIDDEN, PHOTO_WITH_SIGN) == []


def test_an_image_in_a_control_is_named_for_what_the_control_does():
    go = {"kind": "text", "text": "Go now"}
    assert "image-name-contradicts-text" not in rules(named("Search", control="button"), go)
    assert "image-name-contradicts-text" in rules(named("button", control="button"), go)


def test_ocr_noise_of_short_letters_is_no_text_to_contradict():
    assert rules(named("Debian logo"), {"kind": "logo", "text": "OW Ee"}) == []
    assert rules(named("icon"), {"kind": "icon", "text": "Fig"}) == []  # one word on an icon may be noise
    assert rules(named("icon"), {"kind": "icon", "text": "Print preview"}) == ["image-name-contradicts-text"]


def test_a_brand_the_name_says_is_agreement():
    result = {"kind": "logo", "text": "Octocat", "brand": {"id": "github", "name": "GitHub", "p": 0.9}}
    assert rules(named("GitHub"), result) == []


# ---------------------------------------------------------------------------------------------------------------
# Informative image hidden from screen readers (ACT e88epe)


def test_readable_text_marked_decorative_is_informative():
    found = judge(HIDDEN, SALE)
    hidden = [j for j in found if j.rule == "image-informative-hidden"]
    assert len(hidden) == 1 and hidden[0].act == "e88epe"
    assert hidden[0].suggestion == "Spring sale 20% off everything" and hidden[0].evidence["text"] == SALE["text"]


def test_text_read_right_beside_the_image_makes_hiding_it_right():
    beside = ImageMarkup("", decorative=True, nearby_text="Spring sale — 20 % off everything this week")
    assert "image-informative-hidden" not in rules(beside, SALE)
    elsewhere = ImageMarkup("", decorative=True, nearby_text="Our opening hours")
    assert "image-informative-hidden" in rules(elsewhere, SALE)


def test_a_recognised_logo_marked_decorative_is_informative_unless_its_name_is_beside_it():
    found = judge(HIDDEN, GITHUB)
    assert [j.rule for j in found] == ["image-informative-hidden"] and found[0].suggestion == "GitHub logo"
    assert judge(ImageMarkup("", decorative=True, nearby_text="Fork us on GitHub"), GITHUB) == []


def test_a_chart_marked_decorative_is_informative():
    assert rules(HIDDEN, BAR_CHART) == ["image-informative-hidden"]
    untitled = {"kind": "chart", "text": None, "chart_type": None}
    assert rules(HIDDEN, untitled) == ["image-informative-hidden"]


def test_an_icon_that_is_a_controls_only_content_is_informative():
    link = ImageMarkup("", decorative=True, control="link")
    found = judge(link, SEARCH_ICON)
    assert [j.rule for j in found] == ["image-informative-hidden"] and found[0].suggestion == "Search"
    assert "link" in found[0].message
    unsure = {"kind": "icon", "text": None, "meaning": None, "control_name": None}
    assert rules(ImageMarkup("", decorative=True, control="button"), unsure) == ["image-informative-hidden"]


def test_an_icon_beside_a_controls_own_text_or_outside_controls_may_be_decorative():
    assert judge(ImageMarkup("", decorative=True, control="button", control_named=True), SEARCH_ICON) == []
    assert judge(HIDDEN, SEARCH_ICON) == []


@pytest.mark.parametrize("result", [
    {"kind": "photo", "text": None, "alt": "Appears to be: a dog on a beach."},
    {"kind": "illustration", "text": None},
    {"kind": "icon", "text": "Fig"},  # one OCR word on an icon is no information
    {"kind": "unknown", "text": "Sale"},  # ... nor one word on an image of no sure kind
    {"kind": "unknown", "text": None, "reason": "uncertain_kind"},
])
def test_images_that_may_be_decorative_are_left_alone(result):
    assert "image-informative-hidden" not in rules(HIDDEN, result)


def test_a_named_image_is_never_said_to_be_hidden():
    assert "image-informative-hidden" not in rules(named("Spring sale: 20% off everything"), SALE)


# ---------------------------------------------------------------------------------------------------------------
# Image of text (WCAG 1.4.5, ACT 0va7u6)


def test_an_image_of_text_is_found_with_its_text_as_the_suggestion_whatever_its_name():
    for markup in (named("Spring sale: 20% off everything"), named("banner"), HIDDEN):
        found = [j for j in judge(markup, SALE) if j.rule == "image-of-text"]
        assert len(found) == 1
        assert found[0].suggestion == SALE["text"] and found[0].wcag.startswith("WCAG 2.2 SC 1.4.5")
        assert "real text" in found[0].message


@pytest.mark.parametrize("result", [W3C, GITHUB, BAR_CHART, SCREENSHOT, PHOTO_WITH_SIGN,
                                    {"kind": "text", "text": "Welcome"},
                                    {"kind": "text", "text": "Nordwind", "brand": {"name": "Nordwind", "p": 1.0}}])
def test_logos_charts_screenshots_photos_and_single_words_are_not_images_of_text(result):
    assert "image-of-text" not in rules(named("anything"), result)


# ---------------------------------------------------------------------------------------------------------------
# Matching and the result's shape


@pytest.mark.parametrize("a,b,same", [
    ("preferences", "prefer", True), ("sale", "sales", True), ("everything", "everythlng", True),
    ("hierarchy", "hierachy", True), ("w3c", "w3c", True), ("cat", "car", False), ("ercim", "w3c", False),
    ("r", "rstudio", True), ("sale", "salt", True), ("sale", "dale", True), ("go", "gone", False),
])
def test_words_match_as_ocr_and_spelling_allow(a, b, same):
    assert words_match(a, b) is same


@pytest.mark.parametrize("name,text,same", [
    ("Python Software Foundation", "PSF", True), ("PSF", "Python Software Foundation", True),
    ("Bank of America", "BOA", True), ("Débutant", "debutant", True), ("Eleven", "11", True),
    ("ERCIM", "W3C", False), ("Summer collection", "Spring sale", False),
])
def test_names_agree_with_text_by_word_acronym_or_spelling(name, text, same):
    assert agrees(name, text) is same


def test_nothing_is_judged_without_a_result():
    assert judge(HIDDEN, None) == [] and judge(named("banner"), {"error": {"code": "fetch_failed"}}) == []


def test_a_judgement_serialises_with_its_act_rule_and_criterion():
    d = judge(named("ERCIM logo"), W3C)[0].to_dict()
    assert d == {"rule": "image-name-contradicts-text", "act": "qt1vmo", "wcag": "WCAG 2.2 SC 1.1.1 (A)",
                 "severity": "needs review", "message": d["message"], "evidence": {"kind": "logo", "text": "W3C"},
                 "suggestion": "W3C logo", "basis": "text"}


# ---------------------------------------------------------------------------------------------------------------
# The real pipeline gives the evidence the rules need


@pytest.fixture(scope="module")
def describer():
    from server.describe import Describer

    d = Describer.load()
    if not d.ocr_available:
        pytest.skip("Tesseract is not installed")
    return d


def _eval_judge():
    spec = importlib.util.spec_from_file_location("eval_judge", REPO / "scripts" / "eval_judge.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _logotype(text: str) -> Image.Image:
    im = Image.new("RGB", (160, 80), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 48)
    width = draw.textlength(text, font=font)
    draw.text(((160 - width) / 2, 8), text, font=font, fill=(0, 90, 156))
    return im


@pytest.fixture(scope="module")
def real(describer):
    from server.netsafe.images import read_image_file

    images = {"page": read_image_file(str(KINDS / "text.png")),
              "cat": read_image_file(str(REPO / "tests/data/cat.jpg")),
              "icon": read_image_file(str(KINDS / "icon.png")),
              "banner": _eval_judge().make_banner("Spring sale 20% off everything", seed=0),
              "w3c": _logotype("W3C")}
    return dict(zip(images, describer.describe(list(images.values()))))


def test_a_real_page_of_text_is_an_image_of_text_and_informative(real):
    page = real["page"]
    assert page["kind"] == "text" and "Filesystem Hierarchy Standard" in page["text"]
    found = {j.rule: j for j in judge(HIDDEN, page)}
    assert set(found) == {"image-informative-hidden", "image-of-text"}
    assert "Filesystem Hierarchy Standard" in found["image-of-text"].suggestion
    assert rules(named("Filesystem Hierarchy Standard, version 3.0"), page) == ["image-of-text"]
    assert rules(named("FHS cover page"), page) == ["image-of-text"]  # FHS abbreviates its words
    assert "image-name-contradicts-text" in rules(named("image"), page)


def test_a_real_banners_text_is_read_so_its_name_can_be_checked(real):
    banner = real["banner"]
    assert banner["text"] and agrees("Spring sale 20% off everything", banner["text"])
    assert "image-name-contradicts-text" in rules(named("banner"), banner)
    assert "image-name-contradicts-text" not in rules(named("Spring sale: 20% off everything"), banner)
    assert "image-informative-hidden" in rules(HIDDEN, banner)


def test_a_real_logotype_read_by_ocr_contradicts_another_name(real):
    w3c = real["w3c"]
    assert w3c["text"] == "W3C" and w3c["kind"] in ("logo", "unknown", "text")
    assert rules(named("ERCIM logo"), w3c) == ["image-name-contradicts-text"]
    assert rules(named("W3C logo"), w3c) == []


def test_a_real_photo_and_a_real_icon_marked_decorative_are_left_alone(real):
    assert real["cat"]["kind"] == "photo" and real["icon"]["kind"] == "icon"
    assert judge(named("A cat lying on a blanket"), real["cat"]) == [] and judge(HIDDEN, real["cat"]) == []
    assert judge(HIDDEN, real["icon"]) == []
    assert rules(ImageMarkup("", decorative=True, control="link"), real["icon"]) == ["image-informative-hidden"]
