"""Icon-only buttons and links, end to end: the real service with the default checkpoint, a local page that uses
real icon sets (Font Awesome Free, Bootstrap Icons and Material Icons: their CSS, web fonts, svg files and sprite,
and the <iconify-icon> web component, served from extension/node_modules), and headless Chromium with the unpacked extension. Names are read from the accessibility
tree; the recording proxy of tests/test_extension_e2e.py shows what left the browser.

Whether the model can name a given icon is the model's business: for each icon the test asks the service itself
for the control_name of the very PNG (and markup) the extension sent, and checks that the extension wrote exactly
that (and nothing when it is null). Icons whose page code names them (an icon font's class, a ligature, a sprite's
id) are named by that name whatever the model makes of their pixels (MARKUP_NAMES). The page:
tests/fixtures/icons/controls.html.
"""
from __future__ import annotations

import base64
import io
import json
import time

import pytest
import requests
from PIL import Image

from conftest import REPO, LoopbackHTTP, make_shape_image, running_service
from test_extension_e2e import WAIT_MS, Site, ax_tree, browser, open_page, recorder  # noqa: F401 - fixtures by name

from model import default_checkpoint_path

EXTENSION = REPO / "extension"
PACKAGES = {"/fa/": EXTENSION / "node_modules" / "@fortawesome" / "fontawesome-free",
            "/bi/": EXTENSION / "node_modules" / "bootstrap-icons",
            "/mi/": EXTENSION / "node_modules" / "material-icons",
            "/iconify/": EXTENSION / "node_modules" / "iconify-icon"}
FIXTURES = REPO / "tests" / "fixtures" / "icons"

if not all(p.is_dir() for p in PACKAGES.values()):
    pytest.skip("needs the icon sets: cd extension && npm ci", allow_module_level=True)
if not default_checkpoint_path().is_file():
    pytest.skip("needs the default checkpoint", allow_module_level=True)

# The page's controls (ids): named by their authors or showing text, and unnamed with only an icon.
NAMED = {"text": "Search", "text-and-icon": "Search", "aria-label": "Open the menu", "labelledby": "Your cart",
         "img-alt": "Search", "svg-title": "Close", "labelled-button": "Settings", "input-alt": "Search"}
NAMED_IDS = [*NAMED, "sr-only-text", "title"]  # Chromium reads the icon font's private-use glyph into these two
ICONS = {  # id -> how the icon is on the page
    "fa-glyph": "Font Awesome glyph (::before, content with empty alt text)",
    "fa-brand": "Font Awesome brands glyph in a link",
    "bi-glyph": "Bootstrap Icons glyph (::before)",
    "role-button": "glyph in a div role=button",
    "hidden-glyph": "aria-hidden glyph",
    "inline-svg": "inline svg, fill=currentColor",
    "sprite-use": "svg <use> of the Bootstrap Icons sprite file",
    "img-no-alt": "<img> of an svg file without alt",
    "input-no-alt": "input type=image without alt",
    "bg": "CSS background image",
    "dark": "white glyph on a blue button",
    "ligature": "Material Icons ligature (the text more_vert, drawn as one glyph)",
    "component": "<iconify-icon icon=bi:download>: a web component's svg in its shadow root",
    "photo-link": "a 120 px photo in a link: a picture, sent by URL, described when the link gets no name",
}
# What the page's code calls each icon, as the extension sends it, and the name the control gets from that alone.
MARKUP = {"fa-glyph": {"class": "fa-solid fa-magnifying-glass"}, "fa-brand": {"class": "fa-brands fa-github"},
          "bi-glyph": {"class": "bi bi-list"}, "role-button": {"class": "bi bi-gear"},
          "hidden-glyph": {"class": "fa-solid fa-house"}, "sprite-use": {"symbol": "/bi/bootstrap-icons.svg#heart"},
          "dark": {"class": "bi bi-bell dark"}, "ligature": {"class": "material-icons", "ligature": "more_vert"},
          "img-no-alt": {"file": "/fa/svgs/solid/cart-shopping.svg"}, "input-no-alt": {"file": "/bi/icons/search.svg"},
          "component": {"symbol": "bi:download"}, "photo-link": {"file": "photo.png"}}
MARKUP_NAMES = {"fa-glyph": "Search", "fa-brand": "GitHub", "bi-glyph": "List view", "role-button": "Settings",
                "hidden-glyph": "Home", "sprite-use": "Favourite", "dark": "Notifications", "ligature": "More options",
                "component": "Download"}


class IconSite(Site):
    """The e2e test's site, serving the fixture pages with the icon packages under /fa/, /bi/, /mi/ and /iconify/,
    and a photo made by the test."""

    made = None  # the folder of the pictures the test makes (photo.png)

    def translate_path(self, path):
        path = path.split("?", 1)[0]
        if path == "/photo.png":
            return str(self.made / "photo.png")
        for prefix, root in PACKAGES.items():
            if path.startswith(prefix):
                return str(root / path[len(prefix):])
        return str(FIXTURES / path.lstrip("/"))



@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """host:port of the icon pages (the name the imported browser and open_page fixtures ask for)."""
    made = tmp_path_factory.mktemp("pictures")
    make_shape_image("green", "circle", 120).save(made / "photo.png")
    handler = type("Handler", (IconSite,), {"made": made, "root": str(FIXTURES), "reports": [], "heads": []})
    with LoopbackHTTP(handler) as http:
        yield http.host


@pytest.fixture(scope="module")
def service(site, tmp_path_factory):
    """The real service with the default checkpoint (and its icon heads, where it has them)."""
    with running_service(tmp_path_factory.mktemp("log"), device="cpu", cache="none", test_allow_loopback=site,
                         rate_limit=0, max_wait_ms=20) as base:
        yield base


def ask_service(service: str, specs: list[dict]) -> list[dict]:
    """The service's result for each image spec, asked directly."""
    r = requests.post(service + "/v1/alt-text", json={"images": specs}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def control_names(service: str, specs: list[dict]) -> list[str | None]:
    return [res.get("control_name") for res in ask_service(service, specs)]


def wait_sent(recorder, before: int, count: int) -> list[dict]:
    """The image specs sent since `before`, once there are `count` (or after a minute: a busy machine is slow)."""
    deadline = time.monotonic() + 60
    while len(recorder.images()) - before < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return recorder.images()[before:]


def written(page) -> dict[str, str | None]:
    """The aria-label the extension wrote on each control, None where it wrote none."""
    return page.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll('[id]'))
        .map(el => [el.id, el.hasAttribute('data-alt-text') ? el.getAttribute('aria-label') : null]))""")


def usable(name) -> bool:
    """What the extension accepts as a control's name (accessible-name.js isUsableControlName, simplified)."""
    return isinstance(name, str) and 0 < len(name.strip()) <= 60 and name.strip().lower() not in (
        "icon", "image", "logo", "button", "link")


def assert_photo_described(page, result: dict):
    """No name for the link: the picture in it is described as an image, unless to the service it is only an
    icon, a logo or blank (then "Icon." would name the link: nothing is written)."""
    if result["kind"] in ("icon", "logo", "blank") or not result.get("alt"):
        time.sleep(1)
        assert page.evaluate("document.getElementById('photo').getAttribute('alt')") is None, result
    else:
        page.wait_for_function("() => document.getElementById('photo').hasAttribute('data-alt-text')",
                               timeout=WAIT_MS)
        assert page.evaluate("document.getElementById('photo').alt") == result["alt"]


def test_icons_are_drawn_from_the_page_and_only_unnamed_controls_cost_a_request(browser, open_page, recorder,  # noqa: F811
                                                                                 service, site):
    _, worker, _, _ = browser
    before = len(recorder.images())
    page = open_page("controls")
    wait_sent(recorder, before, len(ICONS))
    time.sleep(1.5)  # proving a negative: time for the extension to (wrongly) send the named controls too
    sent = recorder.images()[before:]
    # One drawn PNG per unnamed icon (no URL: a glyph or inline svg has none; the svg files are drawn too),
    # nothing for the ten controls that have names or text.
    assert len(sent) == len(ICONS), [list(s) for s in sent]
    assert [s["url"] for s in sent if "url" in s] == [f"http://{site}/photo.png"]  # the service may fetch it
    drawn = [s for s in sent if "url" not in s]
    assert all(set(s) in ({"data"}, {"data", "markup"}) for s in drawn), drawn
    # With each icon, what the page's code calls it (nothing for an inline svg without a class, the background)
    markups = sorted(json.dumps(s.get("markup"), sort_keys=True) for s in sent)
    bg = f"http://{site}/bi/icons/trash.svg"  # a CSS image's URL, as the browser resolved it
    assert markups == sorted(json.dumps(m, sort_keys=True) for m in [*MARKUP.values(), None, {"file": bg}])
    for spec in drawn:
        header, payload = spec["data"].split(",", 1)
        assert header == "data:image/png;base64"
        image = Image.open(io.BytesIO(base64.b64decode(payload)))
        assert max(image.size) == 64 and image.mode == "RGBA", image.size
        assert image.getchannel("A").getextrema()[1] == 255, "nothing drawn"
    # The white bell on a blue button is drawn on blue, not left white on the white the service composites onto.
    assert any(Image.open(io.BytesIO(base64.b64decode(s["data"].split(",", 1)[1]))).convert("RGB").getpixel((0, 0))
               == (13, 110, 253) for s in drawn)

    # Each unnamed control gets the name the service gives its drawn icon, and none where it gives none (which
    # is which: the multiset here; the per-icon test below pins each one to its control).
    expected = sorted(n.strip() for n in control_names(service, sent) if usable(n))
    page.wait_for_function("(n) => document.querySelectorAll('[data-alt-text][aria-label]').length >= n",
                           arg=len(expected), timeout=WAIT_MS)
    time.sleep(1)  # the answers without a name have come back too
    marks = written(page)
    assert sorted(marks[i] for i in ICONS if marks[i] is not None) == expected, marks
    assert {i: marks[i] for i in MARKUP_NAMES} == MARKUP_NAMES  # their page's code names them
    if marks["photo-link"] is None:
        assert_photo_described(page, ask_service(service, [s for s in sent if "url" in s])[0])

    # The authors' names stay exactly as they were, as a screen reader gets them.
    ax = ax_tree(page)
    for element_id, name in NAMED.items():
        assert ax[element_id]["name"].strip() == name, (element_id, ax[element_id])
    assert [i for i in NAMED_IDS if marks[i] is not None] == []

    # Turned off for the site: every name the extension wrote goes, the page's own attributes come back.
    worker.evaluate("(host) => chrome.storage.local.set({disabledSites: [host]})", "127.0.0.1")
    try:
        page.wait_for_function("() => !document.querySelector('[data-alt-text]')", timeout=WAIT_MS)
        assert not page.evaluate("Array.from(document.querySelectorAll('#unnamed [aria-label]')).map(e => e.id)")
        assert page.evaluate("document.getElementById('aria-label').getAttribute('aria-label')") == "Open the menu"
    finally:
        worker.evaluate("chrome.storage.local.set({disabledSites: []})")


@pytest.mark.parametrize("element_id", list(ICONS), ids=list(ICONS))
def test_each_unnamed_icon_gets_exactly_the_services_control_name(browser, recorder, service, site, element_id):  # noqa: F811
    ctx, worker = browser[:2]
    # The photo's description is in the extension's cache since the test above: forgotten, so it is asked again.
    worker.evaluate("""async () => chrome.storage.local.remove(
        Object.keys(await chrome.storage.local.get(null)).filter(k => k.startsWith('cache:')))""")
    before = len(recorder.images())
    page = ctx.new_page()
    try:
        page.goto(f"http://{site}/controls.html?only={element_id}")
        sent = wait_sent(recorder, before, 1)
        keys = {"url"} if element_id == "photo-link" else {"data"}
        markup = {**MARKUP, "bg": {"file": f"http://{site}/bi/icons/trash.svg"}}.get(element_id)  # as CSS resolved it
        assert len(sent) == 1 and set(sent[0]) == (keys | {"markup"} if markup else keys), sent
        assert sent[0].get("markup") == markup
        [name] = control_names(service, sent)  # what the service says about this very drawing
        assert element_id not in MARKUP_NAMES or name == MARKUP_NAMES[element_id]
        if usable(name):
            page.wait_for_function("(id) => document.getElementById(id).hasAttribute('data-alt-text')",
                                   arg=element_id, timeout=WAIT_MS)
            assert page.evaluate("(id) => document.getElementById(id).getAttribute('aria-label')",
                                 element_id) == name.strip()
            assert ax_tree(page)[element_id]["name"] == name.strip()  # what a screen reader reads
        elif element_id == "photo-link":
            assert_photo_described(page, ask_service(service, sent)[0])
            assert written(page)[element_id] is None
        else:  # the service is not sure what it means: the control is left as it is
            time.sleep(2)  # the extension's answer has come back (it was asked before the one above)
            assert written(page)[element_id] is None
            assert page.evaluate("(id) => document.getElementById(id).getAttribute('aria-label')", element_id) is None
        assert len(recorder.images()) - before == 1  # one request for the one icon
    finally:
        page.close()
