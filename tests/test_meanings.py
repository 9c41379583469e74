"""Naming what an image is: the icon vocabulary, the meaning head's storage, and the rules that say a meaning, a
brand, a title or nothing (blank images, text that does not read as language). Fast: no captioner is loaded."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from server.describe import KINDS, Evidence, Heads, Policy, Wording, decide, phrase
from server.describe.decision import language_lines
from server.describe.heads import Linear
from server.describe.meaning_head import MeaningHead, grid_summary
from server.describe.meanings import PATH, Vocabulary, icon_tokens
from server.describe.pipeline import RESULT_FIELDS, result
from server.describe.pixels import pixel_stats
from server.netsafe.images import decode_image


def icon_evidence(meaning=None, p=0.9, threshold=0.6, kind="icon", text=(), pixels=None):
    probs = {k: (0.9 if k == kind else 0.1 / (len(KINDS) - 1)) for k in KINDS}
    ev = Evidence("A dog.", 0.3, 0.5, probs, 0.9, 0.3, text_lines=list(text), pixels=pixels)
    if meaning:
        ev.meaning_probs = {meaning: p, "other": round(1 - p, 4)}
        ev.meaning_labels = {meaning: {"meaning:search": "Search", "brand:github": "GitHub",
                                       "meaning:home": "Home"}[meaning]}
        ev.meaning_threshold = threshold
    return ev


def said(ev, policy=Policy(), markup=None):
    return result(ev, policy, Wording(), markup)


# -- the vocabulary ---------------------------------------------------------------------------------------------

def test_each_name_belongs_to_one_meaning_or_brand():
    data = json.loads(PATH.read_text(encoding="utf-8"))
    names = [n for m in data["meanings"] for n in m["names"]] + [n for b in data["brands"] for n in b["names"]]
    assert len(names) == len(set(names))
    ids = [m["id"] for m in data["meanings"]]
    assert len(ids) == len(set(ids)) and len(ids) >= 200
    for must in ("search", "menu", "close", "home", "account", "cart", "settings", "share", "download", "upload"):
        assert must in ids


@pytest.mark.parametrize("stem, label", [
    ("magnifying-glass", "meaning:search"), ("search_outline", "meaning:search"),  # Heroicons, Ionicons
    ("edit-find-symbolic", "meaning:search"),  # freedesktop icon naming
    ("MagnifyingGlass", "meaning:search"), ("info-circle", "meaning:info"), ("x", "meaning:close"),
    ("chevron-right", "meaning:arrow-right"), ("arrow_back_ios", "meaning:arrow-left"),
    ("logo-github", "brand:github"), ("mark-github-16", "brand:github"), ("square-github", "brand:github"),
    ("circle-stack", "meaning:database"), ("stack", "meaning:layers"),  # the full name before the one without "circle"
    ("chevron-double-left", "meaning:arrow-left"), ("list-ol", "meaning:list"), ("pricetags-outline", "meaning:tag"),
    ("logo-usd", None),  # a logo the vocabulary does not know is not a meaning
    ("dna", None),
    # "mark" names a brand's mark only beside a brand: Heroicons' "x-mark" and "question-mark-circle" are no logos
    ("x-mark", "meaning:close"), ("question-mark-circle", "meaning:help"), ("exclamation-mark", "meaning:error"),
    ("speaker-x-mark", "meaning:mute"), ("github-mark", "brand:github"),
    # names sets give meanings the vocabulary has: Dashicons' gear, Quill's inline arrows, a cup of coffee
    ("admin-generic", "meaning:settings"), ("inline-left", "meaning:arrow-left"), ("cup-fill", "meaning:coffee"),
    ("trophy", "meaning:trophy"), ("letter-bold-outline", "meaning:bold"), ("data-line", "meaning:database"),
])
def test_icon_file_names_map_to_meanings(stem, label):
    assert Vocabulary.load().label_for(stem) == label


def test_brand_sets_name_every_slug_and_x_is_a_brand_there_only():
    v = Vocabulary.load()
    assert v.label_for("x", brand_set=True, brands={"x": "X"}) == "brand:x"
    assert v.label_for("x") == "meaning:close"
    assert v.label_for("debian", brand_set=True, brands={"debian": "Debian"}) == "brand:debian"
    assert v.get("brand:debian", title="Debian").label == "Debian"
    assert v.get("other") is None


def test_a_meaning_with_a_detail_is_a_variant_neither_that_meaning_nor_other():
    v = Vocabulary.load()
    assert v.label_for("battery-40") is None and v.variant_of("battery-40") == "battery"
    assert v.variant_of("folder-network") == "folder"
    assert v.variant_of("dna") is None and v.variant_of("search") is None  # whole names are not variants


def test_icon_tokens_drop_style_words_only():
    assert icon_tokens("home_outlined") == ["home"]
    assert icon_tokens("arrow-left-circle-fill") == ["arrow", "left"]
    assert icon_tokens("go-home-symbolic") == ["go", "home"]
    assert icon_tokens("circle-stack", keep_style=True) == ["circle", "stack"]
    assert icon_tokens("search-line") == ["search"] and icon_tokens("home-linear") == ["home"]  # MingCute, Solar
    assert icon_tokens("home-01") == ["home"] and icon_tokens("home-f") == ["home"]  # Hugeicons, Jam
    assert icon_tokens("line") == ["line"] and icon_tokens("bold") == ["bold"]  # a name of style words only


def test_iconify_style_names_label_as_their_meaning():
    v = Vocabulary.load()
    assert v.label_for("search-line") == v.label_for("search-01") == v.label_for("search") == "meaning:search"
    assert v.label_for("github-line") == "brand:github"
    assert v.label_for("text-bold-28-regular") == v.label_for("type-bold-solid") == "meaning:bold"  # not "text"
    assert v.label_for("social-github") == "brand:github" and v.label_for("media-pause-outline") == "meaning:pause"
    assert v.label_for("social-media") is None
    assert v.label_for("media-playback-start-symbolic") == "meaning:play"  # freedesktop's whole name comes first


def test_brand_named_by_its_whole_text_only():
    v = Vocabulary.load()
    assert v.brand_named("GitHub").id == "github" and v.brand_named("git hub").id == "github"
    assert v.brand_named("GitHub is where people build software") is None
    assert v.brand_named("X") is None  # too short to be sure


# -- the decision ------------------------------------------------------------------------------------------------

def test_a_sure_meaning_names_the_icon_and_the_control():
    r = said(icon_evidence("meaning:search", p=0.9))
    assert r["alt"] == "Icon: Search." and r["kind"] == "icon"
    assert r["meaning"] == {"id": "search", "label": "Search", "p": 0.9, "source": "image"} and r["brand"] is None
    assert r["control_name"] == "Search" and list(r) == list(RESULT_FIELDS)


def test_a_meaning_under_the_threshold_is_not_said():
    r = said(icon_evidence("meaning:search", p=0.5, threshold=0.6))
    assert r["alt"] == "Icon." and r["meaning"] is None and r["control_name"] is None
    assert said(icon_evidence("meaning:search", p=0.5), Policy(meaning_min=0.4))["alt"] == "Icon: Search."


def test_a_brand_makes_it_a_logo_and_a_meaning_an_icon_whatever_the_kind_head_said():
    r = said(icon_evidence("brand:github", kind="icon"))
    assert r["alt"] == "Logo: GitHub." and r["kind"] == "logo" and r["brand"]["name"] == "GitHub"
    assert r["control_name"] == "GitHub" and r["meaning"] is None
    r = said(icon_evidence("meaning:home", kind="logo"))  # a house is never "Logo."
    assert r["alt"] == "Icon: Home." and r["kind"] == "icon"


def test_other_is_never_said():
    ev = icon_evidence("meaning:search")
    ev.meaning_probs = {"other": 0.95, "meaning:search": 0.05}
    assert said(ev)["alt"] == "Icon."


def test_meanings_are_not_said_for_photos_or_charts():
    ev = icon_evidence("meaning:search", kind="photo")
    assert said(ev)["meaning"] is None
    ev = icon_evidence("meaning:search", kind="chart")
    assert said(ev)["alt"] == "Chart." and said(ev)["control_name"] is None


def test_a_logo_with_short_text_is_named_by_it():
    r = said(icon_evidence(kind="logo", text=["Pillow"]))
    assert r["alt"] == "Logo: “Pillow”" and r["control_name"] == "Pillow"
    r = said(icon_evidence(kind="logo", text=["GitHub"]))  # its text names a known brand
    assert r["alt"] == "Logo: GitHub." and r["brand"] == {"id": "github", "name": "GitHub", "p": 1.0, "source": "text"}


@pytest.mark.parametrize("size, colour, mode", [
    ((1, 1), (0, 0, 0, 0), "RGBA"),  # a lazy loader's transparent pixel
    ((640, 480), (0, 0, 0, 0), "RGBA"),  # fully transparent
    ((300, 200), (230, 230, 230), "RGB"),  # one colour
])
def test_blank_images_are_never_described(size, colour, mode, tmp_path):
    im = Image.new(mode, size, colour)
    path = tmp_path / "blank.png"
    im.save(path)
    decoded = decode_image(path.read_bytes())
    ev = icon_evidence("meaning:search", pixels=pixel_stats(decoded))
    r = said(ev)
    assert r["alt"] is None and r["kind"] == "blank" and r["reason"] == "blank" and r["control_name"] is None


def test_a_small_drawing_is_not_blank(tmp_path):
    im = Image.new("RGB", (24, 24), "white")
    for x in range(6, 18):
        im.putpixel((x, 12), (0, 0, 0))
        im.putpixel((12, x), (0, 0, 0))
    r = said(icon_evidence("meaning:search", pixels=pixel_stats(im)))
    assert r["kind"] == "icon" and r["alt"] == "Icon: Search."


@pytest.mark.parametrize("lines, quoted", [
    (["Summer sale, 30 % off"], True),
    (["130 120 no 100 1996 2000 2008 2008 2012 2016"], False),  # a chart's tick labels
    (["0.5", "1.0", "1.5"], False),
    ([f"Item {w}" for w in "New Open Save Close Print Quit Undo".split()], False),  # a menu's items
    (["Welcome to our site", "We build software for people"], True),
    (["W3C", "HTML5"], True),  # names with digits are words
    (["xq", "zz"], False),
])
def test_text_is_quoted_only_when_it_reads_as_language(lines, quoted):
    assert bool(language_lines(lines)) == quoted


# -- the head and its storage -------------------------------------------------------------------------------------

def tiny_heads(meaning: MeaningHead | None) -> Heads:
    rng = np.random.default_rng(0)
    lin = Linear(rng.normal(size=(len(KINDS), 4)).astype(np.float32), np.zeros(len(KINDS), np.float32),
                 np.zeros(4, np.float32), np.ones(4, np.float32))
    cal = Linear(np.ones((1, 6), np.float32), np.zeros(1, np.float32), np.zeros(6, np.float32),
                 np.ones(6, np.float32))
    return Heads(np.zeros(8, np.float32), np.eye(4, 8, dtype=np.float32), rng.normal(size=(5, 8)).astype(np.float32),
                 lin, cal, {"k": 2, "n_pca": 4, "kinds": list(KINDS)}, meaning=meaning)


def test_the_meaning_head_is_stored_with_the_heads_and_predicts_the_same(tmp_path):
    rng = np.random.default_rng(1)
    classes = ["other", "meaning:search", "brand:github"]
    head = MeaningHead.empty(classes)
    pooled, grid = rng.normal(size=(80, 8)).astype(np.float32), rng.normal(size=(80, 49, 8)).astype(np.float32)
    import torch

    g9 = grid_summary(torch.as_tensor(grid)).numpy()
    head.fit_projections(pooled, g9, 6, 4)
    dim = head.features(pooled[:1], g9[:1]).shape[1]
    assert dim == 6 + 9 * 4
    head.linear = Linear(rng.normal(size=(3, dim)).astype(np.float32), np.zeros(3, np.float32),
                         np.zeros(dim, np.float32), np.ones(dim, np.float32))
    head.threshold, head.titles = 0.7, {"meaning:search": "Search", "brand:github": "GitHub"}
    heads = tiny_heads(head)
    heads.save(tmp_path / "h.safetensors")
    back = Heads.load(tmp_path / "h.safetensors")
    assert back.meaning.classes == classes and back.meaning.threshold == 0.7
    assert back.meaning.titles["brand:github"] == "GitHub"
    np.testing.assert_allclose(back.meaning.probs(pooled, g9), head.probs(pooled, g9), rtol=1e-5, atol=1e-6)
    top = back.meaning.top(pooled[:2], g9[:2], k=2)
    assert len(top) == 2 and all(len(t) == 2 and set(t) <= set(classes) for t in top)
    # with a hidden layer, as fit_meanings.py fits it
    head.hidden = Linear(rng.normal(size=(5, dim)).astype(np.float32), np.zeros(5, np.float32),
                         np.zeros(dim, np.float32), np.ones(dim, np.float32))
    head.linear = Linear(rng.normal(size=(3, 5)).astype(np.float32), np.zeros(3, np.float32),
                         np.zeros(5, np.float32), np.ones(5, np.float32))
    tiny_heads(head).save(tmp_path / "mlp.safetensors")
    back = Heads.load(tmp_path / "mlp.safetensors").meaning
    assert back.hidden is not None
    np.testing.assert_allclose(back.probs(pooled, g9), head.probs(pooled, g9), rtol=1e-5, atol=1e-6)
    # heads without one still load, and say no meanings
    tiny_heads(None).save(tmp_path / "plain.safetensors")
    assert Heads.load(tmp_path / "plain.safetensors").meaning is None


def chart_evidence(chart=None, p=0.9, threshold=0.6, text=()):
    ev = icon_evidence(kind="chart", text=text)
    if chart:
        ev.chart_probs, ev.chart_labels, ev.chart_threshold = {chart: p, "chart:line": 1 - p}, {
            chart: "Bar chart", "chart:line": "Line chart"}, threshold
    return ev


@pytest.mark.parametrize("ev, alt, chart_type", [
    (chart_evidence("chart:bar", text=["Sales by region", "0 10 20"]), "Bar chart: “Sales by region”", "bar"),
    (chart_evidence("chart:bar"), "Bar chart.", "bar"),
    (chart_evidence("chart:bar", p=0.5, text=["Sales by region"]), "Chart: “Sales by region”", None),
    (chart_evidence(), "Chart.", None),
])
def test_charts_are_named_by_type_and_title(ev, alt, chart_type):
    r = said(ev)
    assert r["alt"] == alt and r["kind"] == "chart" and r["control_name"] is None
    assert (r["chart_type"] or {}).get("id") == chart_type


def test_an_illustration_the_chart_head_is_sure_is_a_map_is_said_as_a_map():
    ev = icon_evidence(kind="illustration")
    ev.chart_probs, ev.chart_labels, ev.chart_threshold = {"chart:map": 0.87, "chart:area": 0.13}, {
        "chart:map": "Map", "chart:area": "Area chart"}, 0.51
    assert said(ev)["alt"] == "Map." and said(ev)["kind"] == "chart"
    ev.chart_probs = {"chart:map": 0.8, "chart:area": 0.2}  # an illustration the head half takes for a map
    assert said(ev)["alt"] == "Illustration."
    ev.chart_probs = {"chart:area": 0.9, "chart:map": 0.1}  # other chart types are not guessed for illustrations
    assert said(ev)["alt"] == "Illustration."


def test_brands_have_their_own_threshold():
    ev = icon_evidence("brand:github", p=0.6, threshold=0.95)
    assert said(ev)["brand"] is None  # under the meanings' threshold, no brand threshold: not said
    ev.brand_threshold = 0.5
    assert said(ev)["alt"] == "Logo: GitHub."
    ev = icon_evidence("meaning:search", p=0.6, threshold=0.95)
    ev.brand_threshold = 0.5
    assert said(ev)["meaning"] is None  # a meaning still needs the meanings' threshold


def test_a_page_of_text_is_quoted_even_when_its_lines_are_short():
    headings = ["9 Command-line options", "mode.", "Graphical User Interface", "Command-Line Interface",
                "server protocol", "Help", "Debugger"]
    assert language_lines(headings) == []  # in a screenshot: a menu or a list, not read out
    assert language_lines(headings, lists=True) == headings
    probs = {k: (0.95 if k == "text" else 0.05 / (len(KINDS) - 1)) for k in KINDS}
    r = said(Evidence("A sign.", 0.3, 0.5, probs, 0.9, 0.3, text_lines=headings))
    assert r["kind"] == "text" and r["alt"].startswith("Appears to say: “9 Command-line options")


@pytest.mark.parametrize("lines, title", [
    (["File Edit View", "Create a New Image"], "Create a New Image"),
    (["Score: 0 Remaining 9"], ""),  # a form's fields are no title
    (["copy Map", "Marble"], ""),
])
def test_a_screenshot_title_is_its_first_line_when_it_reads_as_one(lines, title):
    r = said(icon_evidence(kind="screenshot", text=lines))
    assert r["alt"] == (f"Screenshot: “{title}”" if title else "Screenshot.")


@pytest.mark.parametrize("bar, alt", [
    ("Exercise — KBruch", "Screenshot: “Exercise — KBruch”"),  # not the toolbar under it
    ("$7302178.jpg - 2592x1944", "Screenshot: “New Back Arithmetic Comparison”"),  # no title: the first line
    ("", "Screenshot: “New Back Arithmetic Comparison”"),
])
def test_a_screenshots_window_title_comes_before_its_first_line(bar, alt):
    ev = icon_evidence(kind="screenshot", text=["New Back Arithmetic Comparison", "Options:"])
    ev.title_bar = bar
    assert said(ev)["alt"] == alt
    ev.kind_probs = {k: (0.9 if k == "chart" else 0.1 / (len(KINDS) - 1)) for k in KINDS}
    assert "KBruch" not in said(ev)["alt"]  # a chart's title is its own first line


def test_a_one_colour_glyph_on_a_transparent_background_is_not_blank():
    im = Image.new("RGBA", (48, 48), (0, 0, 0, 0))
    for x in range(8, 40):
        for y in range(20, 28):
            im.putpixel((x, y), (20, 20, 20, 255))  # a bar in one colour: its shape is in the alpha channel
            im.putpixel((y, x), (20, 20, 20, 255))
    import io

    buf = io.BytesIO()
    im.save(buf, "PNG")
    r = said(icon_evidence("meaning:search", pixels=pixel_stats(decode_image(buf.getvalue()))))
    assert r["kind"] == "icon" and r["alt"] == "Icon: Search."


def test_the_fit_labels_icons_by_the_vocabulary_as_it_is_now(tmp_path):
    """A synonym added since the icon set was gathered counts without rendering the set again."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from fit_meanings import relabelled
    data = tmp_path / "npm" / "node_modules" / "simple-icons" / "data"
    data.mkdir(parents=True)
    (data / "simple-icons.json").write_text(json.dumps([{"slug": "debian", "title": "Debian"}]))
    entries = [{"name": "circle-stack", "family": "heroicons", "label": "other"},
               {"name": "debian", "family": "simple-icons", "label": "other"},
               {"name": "dna", "family": "lucide", "label": "other"}]
    assert [e["label"] for e in relabelled(entries, tmp_path)] == ["meaning:database", "brand:debian", "other"]


def test_an_iconify_set_is_written_out_as_svg_files_without_hidden_icons(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from gather_icon_set import RESERVED_ICONIFY, ICONIFY_SETS, iconify_files
    assert not RESERVED_ICONIFY & set(ICONIFY_SETS)  # tabler, ph, ri, bx*, la* are for the independent evaluation
    pkg = tmp_path / "node_modules" / "@iconify-json" / "demo"
    pkg.mkdir(parents=True)
    (pkg / "icons.json").write_text(json.dumps({
        "prefix": "demo", "width": 24, "height": 24, "aliases": {"find": {"parent": "search"}},
        "icons": {"search": {"body": '<path fill="currentColor" d="M2 2h20v20H2z"/>'},
                  "wide": {"body": "<g/>", "width": 32},
                  "old": {"body": "<g/>", "hidden": True}}}))
    (pkg / "info.json").write_text(json.dumps({"name": "Demo Icons", "license": {"spdx": "MIT"}}))
    files, licence = iconify_files(tmp_path / "node_modules", tmp_path, "demo")
    assert [p.name for p, _ in files] == ["search.svg", "wide.svg"] and licence == "MIT (Demo Icons, Iconify)"
    svg = files[0][0].read_text()
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"') and "M2 2h20v20H2z" in svg
    assert 'viewBox="0 0 32 24"' in files[1][0].read_text()


def test_families_are_held_out_one_at_a_time_or_in_groups_of_about_equal_size():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from fit_meanings import family_folds
    fam = np.array(["a"] * 4 + ["b"] * 3 + ["c"] * 2 + ["d"])
    assert family_folds(fam, 0) == [["a"], ["b"], ["c"], ["d"]]
    groups = family_folds(fam, 2)
    assert sorted(f for g in groups for f in g) == ["a", "b", "c", "d"] and groups == [["a", "d"], ["b", "c"]]


def test_features_of_icons_already_encoded_are_reused_and_only_new_ones_encoded(shapes_checkpoint, tmp_path):
    """A family added to the icon set costs its own encoder passes, not the whole set's again."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import fit_meanings

    def icons(names: list[str], folder: Path) -> Path:
        folder.mkdir(exist_ok=True)
        for name in names:
            i = ord(name) - ord("a")
            Image.new("RGB", (32, 32), (60 * i, 200, 255 - 60 * i)).save(folder / f"{name}.png")
        (folder / "manifest.json").write_text(json.dumps({"images": [{"file": f"{n}.png"} for n in names]}))
        return folder

    first = icons(["a", "b", "c"], tmp_path / "set")
    _, pooled, grid, _ = fit_meanings.extract(first, shapes_checkpoint)
    encoded = []
    real = fit_meanings.Captioner.load

    def counting_load(*a, **k):
        captioner = real(*a, **k)
        encode = captioner.encode_with_taps
        captioner.encode_with_taps = lambda ims, taps: (encoded.extend(ims), encode(ims, taps))[1]
        return captioner

    fit_meanings.Captioner.load = counting_load
    try:
        later = icons(["c", "a", "d"], first)  # b gone, d added, the order changed
        _, pooled2, grid2, _ = fit_meanings.extract(later, shapes_checkpoint)
    finally:
        fit_meanings.Captioner.load = real
    assert len(encoded) == 1  # only d
    np.testing.assert_array_equal(pooled2[[0, 1]], pooled[[2, 0]])
    np.testing.assert_array_equal(grid2[[0, 1]], grid[[2, 0]])
    _, pooled_d, _, _ = fit_meanings.extract(icons(["d"], tmp_path / "fresh"), shapes_checkpoint)
    np.testing.assert_allclose(pooled2[2], pooled_d[0], atol=1e-2)

    # a tapped block has a cache of its own: asked for first, every icon is encoded once more, for all the caches
    _, pooled3, _, [(tap_mean, tap_grid)] = fit_meanings.extract(later, shapes_checkpoint, taps=(3,))
    assert (later / f"features-tap3-{shapes_checkpoint.stem}.npz").exists()
    assert tap_mean.shape[0] == 3 and tap_grid.shape[:2] == (3, 9) and tap_grid.shape[2] == tap_mean.shape[1]
    np.testing.assert_allclose(pooled3, pooled2, atol=1e-2)
    _, _, _, [(tap_again, _)] = fit_meanings.extract(later, shapes_checkpoint, taps=(3,))
    np.testing.assert_array_equal(tap_again, tap_mean)


def test_a_head_that_taps_an_encoder_block_reads_it_stores_it_and_loads_it(shapes_checkpoint, tmp_path):
    """The glyph head reads a middle block's maps besides the last grid; stored in the heads file, it loads to the
    same probabilities, and the glyph pass feeds it from one encoder pass."""
    from model import Captioner
    from server.describe.heads import Linear
    from server.describe.meaning_head import MeaningHead, grid_summary, tap_summary

    captioner = Captioner.load(shapes_checkpoint, device="cpu")
    ims = [Image.new("RGB", (40, 40), c) for c in ("white", "black", "red", "blue", "green", "yellow")]
    for im, box in zip(ims, [(5, 5, 20, 30), (10, 10, 30, 30), (2, 20, 38, 24)] * 2):
        ImageDraw.Draw(im).rectangle(box, fill="grey")
    from server.describe.glyph import glyph_view
    views = [glyph_view(im, 224) for im in ims]
    pooled, grid, maps = captioner.encode_with_taps(views, (3,))
    _, pooled_ref, grid_ref = captioner.encode_and_pool(views, with_grid=True)
    np.testing.assert_allclose(pooled, pooled_ref, atol=1e-5)
    np.testing.assert_allclose(grid, grid_ref, atol=1e-5)
    taps = [tap_summary(maps[0])]
    head = MeaningHead.empty(["other", "meaning:search"])
    head.glyph = {"size": 224, "taps": [3]}
    head.fit_projections(pooled.numpy(), grid_summary(grid).numpy(), 4, 2, taps)
    x = head.features(pooled.numpy(), grid_summary(grid).numpy(), taps)
    assert x.shape == (6, 4 + 9 * 2 + 6 + 9 * 32)  # the tap: 6 images' worth of directions, 32 per grid cell
    rng = np.random.default_rng(0)
    head.linear = Linear(rng.normal(size=(2, x.shape[1])).astype(np.float32), np.zeros(2, np.float32),
                         np.zeros(x.shape[1], np.float32), np.ones(x.shape[1], np.float32))
    direct = head.probs(pooled.numpy(), grid_summary(grid).numpy(), taps)
    np.testing.assert_allclose(head.glyph_probs(captioner, ims), direct, atol=1e-4)
    with pytest.raises(ValueError, match=r"no block \[99\] to tap"):
        captioner.encode_with_taps(views, (3, 99))
    stored = MeaningHead.from_stored(head.tensors(), head.meta())
    assert stored.taps == (3,)
    np.testing.assert_allclose(stored.glyph_probs(captioner, ims), direct, atol=1e-4)


def test_fit_meanings_refuses_taps_it_cannot_read(capsys):
    """A bad --taps is a clear message and exit status 2, not a traceback."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import fit_meanings

    for argv, said in ((["--view", "glyph", "--taps", "1,x"], "block numbers separated by commas"),
                       (["--taps", "10"], "--taps reads glyph views")):
        with pytest.raises(SystemExit) as e:
            fit_meanings.main(argv)
        assert e.value.code == 2 and said in capsys.readouterr().err


def test_refitting_the_honesty_heads_keeps_the_meaning_and_chart_type_heads(tmp_path):
    """fit_honesty.py replaces the kind, out-of-domain and calibration heads; the named heads fit_meanings.py fitted
    for the same checkpoint stay (the chart-type head was dropped by a refit before)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from fit_honesty import kept_named_heads

    rng = np.random.default_rng(2)
    pooled = rng.normal(size=(40, 8)).astype(np.float32)

    def head(classes: list[str]) -> MeaningHead:
        h = MeaningHead.empty(classes)
        h.fit_projections(pooled, None, 4)
        h.linear = Linear(rng.normal(size=(len(classes), 4)).astype(np.float32), np.zeros(len(classes), np.float32),
                          np.zeros(4, np.float32), np.ones(4, np.float32))
        return h

    heads = tiny_heads(head(["other", "meaning:search"]))
    heads.chart = head(["other", "chart:bar", "chart:line"])
    heads.meta["checkpoint"] = "a" * 64
    heads.save(tmp_path / "h.safetensors")
    kept = kept_named_heads(tmp_path / "h.safetensors", "a" * 64)
    assert sorted(kept) == ["chart", "meaning"] and kept["chart"].classes == ["other", "chart:bar", "chart:line"]
    np.testing.assert_allclose(kept["chart"].probs(pooled, None), heads.chart.probs(pooled, None), atol=1e-6)
    assert kept_named_heads(tmp_path / "h.safetensors", "b" * 64) == {}  # fitted for another checkpoint
    assert kept_named_heads(tmp_path / "missing.safetensors", "a" * 64) == {}


def _drawn(draw) -> Image.Image:
    """A 224-px glyph view (dark on white) drawn by ``draw(ImageDraw)``."""
    from PIL import ImageDraw
    im = Image.new("RGB", (224, 224), "white")
    draw(ImageDraw.Draw(im))
    return im


def test_glyphs_are_redrawn_in_the_styles_other_sets_draw_them_in():
    """scripts/glyph_styles.py: a ring drawn with a stroke gets bolder (its counter stays open), lighter and filled;
    a solid disc gets outlined; a style that does not apply gives None."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from glyph_styles import STYLES, restyled, some_style
    ring = _drawn(lambda d: d.ellipse((30, 30, 194, 194), outline="black", width=14))
    disc = _drawn(lambda d: d.ellipse((30, 30, 194, 194), fill="black"))
    ink = lambda im: (np.asarray(im.convert("L")) < 128).mean()  # noqa: E731
    centre = lambda im: np.asarray(im.convert("L"))[112, 112]  # noqa: E731
    bold, light, filled = (restyled(ring, s) for s in ("bold", "light", "fill"))
    assert ink(bold) > ink(ring) > ink(light) > 0 and centre(bold) > 200  # the counter stays white
    assert centre(filled) < 50 and ink(filled) > 2 * ink(ring)
    outline = restyled(disc, "outline")
    assert centre(outline) > 200 and 0 < ink(outline) < 0.5 * ink(disc)
    assert restyled(ring, "outline") is None and restyled(disc, "bold") is None and restyled(disc, "fill") is None
    assert restyled(Image.new("RGB", (224, 224), "white"), "bold") is None
    assert bold.size == (224, 224) and bold.mode == "RGB"
    style, view = some_style(ring, "set/ring.png")
    assert style in STYLES and view is not None and some_style(ring, "set/ring.png")[0] == style  # fixed by name
    assert some_style(Image.new("RGB", (224, 224), "white"), "x.png") == ("", None)
    with pytest.raises(ValueError):
        restyled(ring, "italic")


def test_styled_glyph_features_are_cached_and_learned_with_their_icons_class(shapes_checkpoint, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import fit_meanings
    folder = tmp_path / "set"
    folder.mkdir()
    _drawn(lambda d: d.ellipse((30, 30, 194, 194), outline="black", width=14)).save(folder / "ring.png")
    Image.new("RGB", (64, 64), "white").save(folder / "blank.png")  # nothing to redraw
    _drawn(lambda d: d.rectangle((40, 40, 184, 184), fill="black")).save(folder / "square.png")
    files = ["ring.png", "blank.png", "square.png"]
    which, pooled, grid, tapped = fit_meanings.extract_styles(folder, shapes_checkpoint, files)
    assert which.tolist() == [0, 2] and pooled.shape[0] == 2 and grid.shape[:2] == (2, 9) and tapped == []
    assert (folder / f"features-glyph-styles-{shapes_checkpoint.stem}.npz").exists()
    real = fit_meanings.Captioner.load
    fit_meanings.Captioner.load = lambda *a, **k: pytest.fail("cached features are encoded again")
    try:
        which2, pooled2, _, _ = fit_meanings.extract_styles(folder, shapes_checkpoint, files[::-1])
    finally:
        fit_meanings.Captioner.load = real
    assert which2.tolist() == [0, 2]
    assert fit_meanings.extract_styles(folder, shapes_checkpoint, ["blank.png"])[0].tolist() == []  # none redrawn
    blank_only = tmp_path / "blank"
    blank_only.mkdir()
    Image.new("RGB", (64, 64), "white").save(blank_only / "blank.png")
    assert fit_meanings.extract_styles(blank_only, shapes_checkpoint, ["blank.png"])[0].tolist() == []
    np.testing.assert_allclose(pooled2, pooled[::-1], atol=1e-2)
    x, y = np.arange(6.0).reshape(3, 2), np.array([1, 0, 2])
    xs, ys = fit_meanings.with_styles(x, y, np.array([True, True, False]), (which, np.full((2, 2), 9.0)))
    assert xs.tolist() == [[0, 1], [2, 3], [9, 9]] and ys.tolist() == [1, 0, 1]  # the held-out square's is left out
    assert fit_meanings.with_styles(x, y, np.array([True, False, True]), None)[1].tolist() == [1, 2]


def test_families_learned_from_only_or_left_out_are_not_measured(shapes_checkpoint, tmp_path):
    """--train-only families teach every fold and are never held out; --without families are not used at all: the
    held-out figures of a head with more families are on the same families as the head without them."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import fit_meanings
    icons = tmp_path / "icons"
    entries = []
    house = [(40, 120), (112, 40), (184, 120), (184, 190), (40, 190)]
    drawings = {"home": lambda d, w: d.polygon(house, outline="black", width=w),
                "search": lambda d, w: (d.ellipse((40, 40, 150, 150), outline="black", width=w),
                                        d.line((135, 135, 190, 190), fill="black", width=w)),
                "grid": lambda d, w: [d.rectangle((x, y, x + 60, y + 60), outline="black", width=w)
                                      for x in (40, 120) for y in (40, 120)]}
    for family, width in zip("abcde", (6, 10, 14, 18, 22)):
        (icons / "images" / family).mkdir(parents=True)
        for name, draw in drawings.items():
            file = f"images/{family}/{name}.png"
            _drawn(lambda d: draw(d, width)).save(icons / file)
            entries.append({"file": file, "family": family, "label": "meaning:" + name, "name": name,
                            "source": f"npm/{family}/{name}.svg", "set_style": ""})
    (icons / "manifest.json").write_text(json.dumps({"images": entries}))
    report = tmp_path / "report.json"
    argv = ["--icons", str(icons), "--checkpoint", str(shapes_checkpoint), "--view", "glyph", "--taps", "none",
            "--pooled-components", "4", "--grid-components", "2", "--epochs", "5", "--report", str(report),
            "--no-write", "--train-only", "e", "--without", "d"]
    assert fit_meanings.main(argv) == 0
    assert set(json.loads(report.read_text())["per_family"]) == {"a", "b", "c"}
    with np.load(report.with_suffix(".heldout.npz")) as held:
        assert set(held["family"]) == {"a", "b", "c"} and len(held["y"]) == 9
    both = json.loads(report.with_suffix(".both.json").read_text())  # the mean over the glyph and it restyled
    assert both["all_families"]["named_icons"] == 9
    assert fit_meanings.main([*argv, "--thresholds-from", str(report)]) == 0  # the same classes: accepted
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**json.loads(report.read_text()), "classes": 7}))
    for flags in (["--train-only", "z"], ["--without", "z"], ["--thresholds-from", str(other)],
                  ["--thresholds-from", str(tmp_path / "none.json")]):
        with pytest.raises(SystemExit) as e:
            fit_meanings.main([*argv[:-4], *flags])
        assert e.value.code == 2
