"""The browser extension's logic and packaging, without the service:

- which images need a description (accessible name, decorative, hidden, tiny, suspicious) on DOM fixtures, run in a
  real headless Chromium through Playwright, so layout and computed styles are the browser's own;
- the pure logic (suspicious names, local hosts, the retry rules) under node's test runner: extension/tests/*.mjs;
- the loaded extension against a busy service (a local stand-in that refuses the first request with a 503);
- scripts/build_extension.py, and `web-ext lint` on the source tree and on the Firefox package.

Each part skips, saying why, when its tool (Chromium + Playwright, node, extension/node_modules) is missing.
"""
from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from conftest import REPO, LoopbackHTTP, make_shape_image

EXTENSION = REPO / "extension"
CHROMIUM = Path("/usr/bin/chromium")
WEB_EXT = EXTENSION / "node_modules" / ".bin" / "web-ext"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]

sys.path.insert(0, str(REPO / "scripts"))
import build_extension  # noqa: E402


def _png(colour="red", shape="square") -> bytes:
    buf = io.BytesIO()
    make_shape_image(colour, shape).save(buf, "PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- DOM rules

PNG = "data:image/png;base64," + base64.b64encode(_png()).decode()

# Each element with data-expect is classified with minSize 16; data-name and data-source check the name found.
FIXTURE = f"""<!doctype html><html lang="en"><head><style>.gone {{ display: none }}</style></head><body>
<img id="no-alt" src="{PNG}" width="64" height="64" data-expect="describe">
<img id="empty-alt" alt="" src="{PNG}" width="64" height="64" data-expect="decorative">
<img id="blank-alt" alt="   " src="{PNG}" width="64" height="64" data-expect="decorative">
<img id="presentation" role="presentation" src="{PNG}" width="64" height="64" data-expect="decorative">
<img id="role-none" role="none" src="{PNG}" width="64" height="64" data-expect="decorative">
<img id="presentation-but-labelled" role="presentation" aria-label="Sales by month, 2024" src="{PNG}"
     width="64" height="64" data-expect="named" data-source="aria-label">
<img id="good-alt" alt="A red square on white" src="{PNG}" width="64" height="64" data-expect="named"
     data-name="A red square on white" data-source="alt">
<img id="file-alt" alt="IMG_0042.jpg" src="{PNG}" width="64" height="64" data-expect="describe"
     data-name="IMG_0042.jpg">
<img id="placeholder-alt" alt="image" src="{PNG}" width="64" height="64" data-expect="describe">
<img id="logo-alt" alt="logo" src="{PNG}" width="64" height="64" data-expect="describe">
<img id="aria-label" aria-label="Sales chart for 2024" src="{PNG}" width="64" height="64" data-expect="named"
     data-source="aria-label">
<span id="town">Map of the old town</span>
<img id="labelledby" aria-labelledby="town" src="{PNG}" width="64" height="64" data-expect="named"
     data-name="Map of the old town" data-source="aria-labelledby">
<img id="labelledby-missing" aria-labelledby="nowhere" src="{PNG}" width="64" height="64" data-expect="describe">
<span id="empty-label"></span>
<img id="labelledby-empty-then-alt" aria-labelledby="empty-label" alt="Harbour at dawn" src="{PNG}" width="64"
     height="64" data-expect="named" data-source="alt">
<img id="title-only" title="Portrait of Ada Lovelace" src="{PNG}" width="64" height="64" data-expect="named"
     data-source="title">
<img id="aria-hidden" aria-hidden="true" src="{PNG}" width="64" height="64" data-expect="hidden">
<div aria-hidden="true"><img id="aria-hidden-parent" src="{PNG}" width="64" height="64" data-expect="hidden"></div>
<img id="display-none" style="display: none" src="{PNG}" width="64" height="64" data-expect="hidden">
<div class="gone"><img id="display-none-parent" src="{PNG}" width="64" height="64" data-expect="hidden"></div>
<img id="visibility-hidden" style="visibility: hidden" src="{PNG}" width="64" height="64" data-expect="hidden">
<img id="hidden-attribute" hidden src="{PNG}" width="64" height="64" data-expect="hidden">
<img id="zero-size" src="{PNG}" width="0" height="0" data-expect="hidden">
<img id="tiny" src="{PNG}" width="10" height="10" data-expect="tiny">
<img id="thin" src="{PNG}" width="300" height="8" data-expect="tiny">
<img id="tracking-pixel" src="{PNG}" width="1" height="1" data-expect="tiny">
<input type="image" id="input-no-alt" src="{PNG}" width="64" height="64" data-expect="describe">
<input type="image" id="input-empty-alt" alt="" src="{PNG}" width="64" height="64" data-expect="describe">
<input type="image" id="input-alt" alt="Search the catalogue" src="{PNG}" width="64" height="64"
       data-expect="named">
<div role="img" id="role-img" style="width: 64px; height: 64px; background: url({PNG})" data-expect="describe"></div>
<div role="img" id="role-img-labelled" aria-label="Two cats on a sofa" style="width: 64px; height: 64px"
     data-expect="named"></div>
<div role="img" id="role-img-title" title="picture" style="width: 64px; height: 64px" data-expect="describe"></div>
<div role="img" aria-label="A family photo"><img id="inside-role-img" src="{PNG}" width="64" height="64"
     data-expect="ignore"></div>
<svg id="svg-no-name" width="64" height="64" data-expect="describe"><circle cx="32" cy="32" r="16" fill="red"/></svg>
<svg id="svg-title" width="64" height="64" data-expect="named" data-source="title-element">
  <title>Rainfall by month</title><rect width="10" height="40"/></svg>
<svg id="svg-title-suspicious" width="64" height="64" data-expect="describe"><title>graphic</title>
  <rect width="10" height="40"/></svg>
<svg id="svg-role-img" role="img" width="64" height="64" data-expect="describe"><rect width="9" height="9"/></svg>
<svg id="svg-aria-hidden" aria-hidden="true" width="64" height="64" data-expect="hidden"><rect width="9"/></svg>
<button><svg id="svg-icon-beside-text" width="24" height="24" data-expect="ignore"><rect width="9"/></svg>
  Search</button>
<a href="#top"><svg id="svg-icon-only-link" width="24" height="24" data-expect="describe"><rect width="9"/></svg></a>
<svg width="64" height="64"><svg id="svg-nested" width="32" height="32" data-expect="ignore"></svg></svg>
<img id="generated" alt="Appears to be: a red square." data-alt-text="Appears to be: a red square." src="{PNG}"
     width="64" height="64" data-expect="generated">
<p id="paragraph" data-expect="ignore">Not an image</p>
<div style="height: 6000px"></div>
<img id="lazy-not-loaded" loading="lazy" src="http://fixtures.test/lazy.png" data-expect="pending">
</body></html>"""

CLASSIFY_ALL = """(minSize) => Array.from(document.querySelectorAll('[data-expect]')).map(el => {
    const v = altTextNames.classify(el, {minSize});
    return {id: el.id, expect: el.dataset.expect, state: v.state, name: v.name, source: v.source,
            wantName: el.dataset.name, wantSource: el.dataset.source};
})"""


@pytest.fixture(scope="module")
def playwright():
    """One Playwright for the module (the sync API cannot run two at once)."""
    if not CHROMIUM.exists():
        pytest.skip("needs Chromium at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def fixture_page(playwright):
    png = _png()
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1000, "height": 800})

    def serve(route):
        if route.request.url.endswith(".png"):
            route.fulfill(status=200, content_type="image/png", body=png)
        else:
            route.fulfill(status=200, content_type="text/html", body=FIXTURE)

    page.route("http://fixtures.test/**", serve)
    page.goto("http://fixtures.test/index.html")
    page.add_script_tag(path=str(EXTENSION / "accessible-name.js"))
    yield page
    browser.close()


def test_images_are_classified_like_axe(fixture_page):
    rows = fixture_page.evaluate(CLASSIFY_ALL, 16)
    assert len(rows) > 40
    wrong = [r for r in rows if r["state"] != r["expect"]]
    assert not wrong, "\n".join(f"{r['id']}: expected {r['expect']}, got {r['state']}" for r in wrong)
    for r in rows:
        if r["wantName"]:
            assert r["name"] == r["wantName"], r
        if r["wantSource"]:
            assert r["source"] == r["wantSource"], r


def test_minimum_size_is_configurable(fixture_page):
    states = {r["id"]: r["state"] for r in fixture_page.evaluate(CLASSIFY_ALL, 8)}
    assert states["tiny"] == "describe"  # 10x10 is enough with minSize 8
    assert states["thin"] == "describe"
    assert states["tracking-pixel"] == "tiny"


def test_the_classic_script_defines_one_global_and_image_kinds(fixture_page):
    kinds = fixture_page.evaluate("""() => ['no-alt', 'input-no-alt', 'role-img', 'svg-no-name', 'svg-role-img',
        'paragraph'].map(id => altTextNames.imageKind(document.getElementById(id)))""")
    assert kinds == ["img", "input", "role", "svg", "svg", None]
    leaked = fixture_page.evaluate("""() => Object.keys(window).filter(k => /names|alt/i.test(k))""")
    assert leaked == ["altTextNames"]


# ---------------------------------------------------------------------------------------------- icon-only controls

SVG_ICON = '<svg width="24" height="24" viewBox="0 0 16 16"><path d="M2 2h12v12H2z"/></svg>'
# Each control with data-expect is classified by altTextNames.classifyControl; data-icon is the icon type found.
CONTROLS = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><style>
  button, a, [role] {{ font: 16px Arial, sans-serif; }}
  .fa::before {{ content: "\\f002" / ""; font-family: "Font Awesome 7 Free"; font-weight: 900; }}
  .bi {{ display: inline-block; width: 1em; height: 1em; }}
  .bi::before {{ content: "\\f479"; font-family: bootstrap-icons; }}
  .named-glyph::before {{ content: "\\f002" / "Search"; font-family: "Font Awesome 7 Free"; }}
  .css-text::before {{ content: "Next"; }}
  .material {{ font-family: "Material Symbols Outlined"; font-size: 24px; }}
  .sr-only {{ position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); }}
  .bg {{ width: 32px; height: 32px; background: url({PNG}) center / 24px no-repeat; }}
</style></head><body>
<button id="text" data-expect="text">Search</button>
<button id="text-and-icon" data-expect="text">{SVG_ICON} Search</button>
<button id="aria-label" aria-label="Search" data-expect="named" data-source="aria-label">{SVG_ICON}</button>
<button id="placeholder-label" aria-label="icon" data-expect="named">{SVG_ICON}</button>
<span id="l">Basket</span><button id="labelledby" aria-labelledby="l" data-expect="named">{SVG_ICON}</button>
<label for="labelled">Settings</label><button id="labelled" data-expect="named" data-source="label">{SVG_ICON}</button>
<button id="title" title="Print" data-expect="named" data-source="title">{SVG_ICON}</button>
<a id="img-alt" href="#x" data-expect="text"><img src="{PNG}" alt="Search" width="24" height="24"></a>
<button id="svg-title" data-expect="text"><svg width="24" height="24"><title>Close</title><rect width="9"
  height="9"/></svg></button>
<button id="svg-aria-label" data-expect="text"><svg aria-label="Close" width="24" height="24"></svg></button>
<a id="svg-link" href="#x" data-expect="describe" data-icon="svg">{SVG_ICON}</a>
<button id="fa" data-expect="describe" data-icon="glyph"><i class="fa"></i></button>
<button id="fa-hidden" data-expect="describe" data-icon="glyph"><i class="fa" aria-hidden="true"></i></button>
<button id="bi" data-expect="describe" data-icon="glyph"><i class="bi"></i></button>
<button id="named-glyph" data-expect="text"><i class="named-glyph"></i></button>
<div id="role-button" role="button" tabindex="0" data-expect="describe" data-icon="glyph"><i class="bi"></i></div>
<span id="role-link" role="link" tabindex="0" data-expect="describe" data-icon="svg">{SVG_ICON}</span>
<button id="material" data-expect="describe" data-icon="text-glyph"><span class="material">more_vert</span></button>
<button id="private-use-text" data-expect="describe" data-icon="text-glyph"><span>\uf002</span></button>
<button id="symbol-fallback" style="font-family: Arial, 'Segoe UI Symbol'" data-expect="text">Submit</button>
<button id="css-text" data-expect="text"><span class="css-text"></span></button>
<button id="sr-only" data-expect="text">{SVG_ICON}<span class="sr-only">Close</span></button>
<a id="aria-hidden-text" href="#x" data-expect="text"><span aria-hidden="true">Next</span></a>
<button id="img-no-alt" data-expect="describe" data-icon="img"><img src="{PNG}" width="24" height="24"></button>
<button id="img-empty-alt" data-expect="describe" data-icon="img"><img src="{PNG}" alt="" width="24"
  height="24"></button>
<input type="image" id="input-no-alt" src="{PNG}" width="24" height="24" data-expect="describe" data-icon="img">
<input type="image" id="input-alt" src="{PNG}" alt="Go" width="24" height="24" data-expect="named"
  data-source="alt">
<button id="background" class="bg" data-expect="describe" data-icon="background"></button>
<button id="two-icons" data-expect="empty">{SVG_ICON}{SVG_ICON}</button>
<button id="empty" data-expect="empty"></button>
<button id="display-none" style="display: none" data-expect="hidden">{SVG_ICON}</button>
<div aria-hidden="true"><button id="aria-hidden" data-expect="hidden">{SVG_ICON}</button></div>
<button id="tiny" data-expect="tiny"><svg width="4" height="4"><rect width="4" height="4"/></svg></button>
<button id="with-field" data-expect="text"><input type="checkbox"></button>
<a id="no-href" data-expect="ignore">{SVG_ICON}</a>
<button id="ours" aria-label="Search" data-alt-text="Search" data-expect="describe" data-icon="svg">{SVG_ICON}</button>
</body></html>"""

CLASSIFY_CONTROLS = """() => Array.from(document.querySelectorAll('[data-expect]')).map(el => {
    const v = altTextNames.classifyControl(el);
    return {id: el.id, expect: el.dataset.expect, state: v.state, source: v.source || null,
            icon: v.icon ? v.icon.type : null, wantIcon: el.dataset.icon || null, wantSource: el.dataset.source || null,
            generated: !!v.generated};
})"""


@pytest.fixture(scope="module")
def controls_page(playwright):
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.route("http://fixtures.test/**", lambda route: route.fulfill(status=200, content_type="text/html",
                                                                      body=CONTROLS))
    page.goto("http://fixtures.test/controls.html")
    page.add_script_tag(path=str(EXTENSION / "accessible-name.js"))
    yield page
    browser.close()


def test_icon_only_controls_are_found_and_named_ones_left_alone(controls_page):
    rows = controls_page.evaluate(CLASSIFY_CONTROLS)
    assert len(rows) > 35
    wrong = [r for r in rows if (r["state"], r["icon"]) != (r["expect"], r["wantIcon"])]
    assert not wrong, "\n".join(f"{r['id']}: expected {r['expect']} {r['wantIcon']}, got {r['state']} {r['icon']}"
                                for r in wrong)
    for r in rows:
        if r["wantSource"]:
            assert r["source"] == r["wantSource"], r
    # The aria-label this extension wrote is not an author's name: the control is still one to name (and known
    # as named by us); an author's aria-label of the same words on another control is theirs.
    generated = {r["id"]: r["generated"] for r in rows}
    assert (generated["ours"], generated["aria-label"]) == (True, False)


def test_the_icon_of_an_unnamed_control_is_left_to_the_control(controls_page):
    owners = controls_page.evaluate("""() => ['#svg-link svg', '#img-no-alt img', '#input-no-alt',
        '#text-and-icon svg', '#img-alt img', '#two-icons svg'].map(s => {
        const owner = altTextNames.iconOwner(document.querySelector(s));
        return owner && owner.id;
    })""")
    assert owners == ["svg-link", "img-no-alt", "input-no-alt", None, None, None]


MARKUP_VECTORS = json.loads((REPO / "tests" / "vectors" / "markup.json").read_text(encoding="utf-8"))["cases"]
# Glyphs drawn by ::before (an empty <i>, as icon fonts use it) and ligature fonts, as the icon sets' CSS would, and
# icon web components that draw an svg in an open shadow root, as <iconify-icon>, <sl-icon> and <vaadin-icon> do
# (the real <iconify-icon> runs in tests/test_extension_controls.py).
MARKUP_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><style>
  button, a {{ font: 16px Arial, sans-serif; }}
  i:empty::before {{ content: "\\f002"; }}
  .material-icons, .material-symbols-outlined {{ font-family: "Material Symbols Outlined"; font-size: 24px; }}
</style><script>
  for (const tag of ["iconify-icon", "sl-icon", "vaadin-icon"]) customElements.define(tag, class extends HTMLElement {{
    connectedCallback() {{
      if (this.shadowRoot) return;
      this.attachShadow({{ mode: "open" }}).innerHTML = '<style>:host {{ display: inline-block; }}</style>' +
        '<svg width="24" height="24" viewBox="0 0 24 24" aria-hidden="true"><path d="M4 4h16v16H4z"/></svg>';
    }}
  }});
</script></head><body>{cases}</body></html>"""


def test_icon_markup_is_collected_as_the_shared_vectors_say(playwright):
    """tests/vectors/markup.json: what the page's code calls a control's icon, as the audit collects it too."""
    cases = "".join(f'<div class="page icon-left" data-case="{c["name"]}">{c["html"]}</div>' for c in MARKUP_VECTORS)
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    try:
        page = browser.new_page()
        page.route("http://fixtures.test/**", lambda route: route.fulfill(
            status=200, **({"content_type": "text/html", "body": MARKUP_PAGE.format(cases=cases)}
                           if route.request.url.endswith(".html") else {"content_type": "image/png", "body": _png()})))
        page.goto("http://fixtures.test/markup.html")
        page.add_script_tag(path=str(EXTENSION / "accessible-name.js"))
        rows = page.evaluate("""() => Array.from(document.querySelectorAll('[data-case]')).map(div => {
            const v = altTextNames.classifyControl(div.querySelector('#c'));
            return {name: div.dataset.case, state: v.state, markup: v.icon ? altTextNames.iconMarkup(v.icon) : null};
        })""")
    finally:
        browser.close()
    assert [r["name"] for r in rows] == [c["name"] for c in MARKUP_VECTORS]
    for row, case in zip(rows, MARKUP_VECTORS):
        assert (row["state"], row["markup"]) == ("describe", case["markup"]), row


# ---------------------------------------------------------------------------------------------- node tests

@pytest.mark.skipif(shutil.which("node") is None, reason="needs node (for node --test)")
def test_pure_logic_under_node():
    r = subprocess.run(["node", "--test", "extension/tests/"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert re.search(r"^# fail 0$", r.stdout, re.M) and not re.search(r"^# pass 0$", r.stdout, re.M), r.stdout


# ---------------------------------------------------------------------------------------------- a busy service

BUSY_PAGE = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Busy</title></head><body>
<img id="photo" src="http://fixtures.test/photo.png" width="64" height="64">
<img id="named" src="{PNG}" alt="A red square on white" width="64" height="64">
</body></html>"""
BUSY_ALT = "Appears to be: a red square."


class BusyService:
    """A stand-in for the service on a loopback port, with the real one's CORS for extensions: the first
    POST /v1/alt-text gets a 503 overloaded with Retry-After: 1, the others a description of each image. Keeps
    when each POST came and what it asked."""

    def __init__(self):
        self.posts, self.lock = [], threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, status, body=b"", headers=()):
                self.send_response(status)
                origin = self.headers.get("Origin")
                if origin:
                    self.send_header("Access-Control-Allow-Origin", origin)
                    self.send_header("Vary", "Origin")
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_OPTIONS(self):  # noqa: N802 - the CORS pre-flight
                self._send(200, headers=[("Access-Control-Allow-Headers", "Content-Type, X-API-Key"),
                                         ("Access-Control-Allow-Methods", "GET, POST, OPTIONS")])

            def do_GET(self):  # noqa: N802 - /v1/limits
                self._send(200, json.dumps({"max_images": 16, "max_body_bytes": 20_000_000}).encode(),
                           [("Content-Type", "application/json")])

            def do_POST(self):  # noqa: N802
                images = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["images"]
                with service.lock:
                    service.posts.append((time.monotonic(), images))
                    first = len(service.posts) == 1
                if first:
                    body = {"error": {"code": "overloaded", "message": "the service is busy"}}
                    self._send(503, json.dumps(body).encode(), [("Content-Type", "application/json"),
                                                                ("Retry-After", "1")])
                    return
                body = {"results": [{"alt": BUSY_ALT, "kind": "photo"} for _ in images]}
                self._send(200, json.dumps(body).encode(), [("Content-Type", "application/json")])

            def log_message(self, *args):
                pass

        self.http = LoopbackHTTP(Handler)
        self.url = self.http.url


def test_a_busy_service_is_asked_again_after_retry_after(playwright, tmp_path):
    """The first answer is a 503 overloaded with Retry-After: 1; the extension waits, sends the image again, and
    writes the description that the second answer gives, once."""
    service = BusyService()
    ctx = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
        args=[*CHROMIUM_ARGS, f"--disable-extensions-except={EXTENSION}", f"--load-extension={EXTENSION}"])
    try:
        worker = ctx.service_workers[0] if ctx.service_workers else ctx.wait_for_event("serviceworker",
                                                                                      timeout=10_000)
        worker.evaluate("(url) => chrome.storage.local.set({serviceUrl: url})", service.url)
        png = _png()
        ctx.route("http://fixtures.test/**", lambda route: route.fulfill(
            status=200, content_type="image/png" if route.request.url.endswith(".png") else "text/html",
            body=png if route.request.url.endswith(".png") else BUSY_PAGE))
        page = ctx.new_page()
        page.goto("http://fixtures.test/busy.html")
        page.wait_for_function("() => document.getElementById('photo').hasAttribute('data-alt-text')",
                               timeout=20_000)
        assert page.evaluate("document.getElementById('photo').alt") == BUSY_ALT
        assert page.evaluate("document.getElementById('named').alt") == "A red square on white"
        time.sleep(0.5)  # nothing more is sent, nothing written twice
        with service.lock:
            posts = list(service.posts)
        assert [images for _, images in posts] == [[{"url": "http://fixtures.test/photo.png"}]] * 2
        assert posts[1][0] - posts[0][0] >= 1.0  # Retry-After: 1, waited
        assert page.evaluate("document.querySelectorAll('[data-alt-text]').length") == 1
    finally:
        ctx.close()
        service.http.close()


# ---------------------------------------------------------------------------------------------- packaging

@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    return build_extension.build(tmp_path_factory.mktemp("dist"))


def _manifest_paths(manifest: dict) -> set[str]:
    """Every file the manifest names."""
    paths = set(manifest["icons"].values()) | set(manifest["action"]["default_icon"].values())
    paths |= {manifest["action"]["default_popup"], manifest["options_ui"]["page"]}
    background = manifest["background"]
    paths |= set(background.get("scripts", [])) | ({background["service_worker"]} if "service_worker" in background
                                                   else set())
    for cs in manifest["content_scripts"]:
        paths |= set(cs["js"])
    return paths


def _referenced(names: list[str], read) -> set[str]:
    """Files that shipped HTML and JS load: <script src>, <link href>, ES module imports."""
    refs = set()
    for name in names:
        if name.endswith((".html", ".js")):
            text = read(name)
            refs |= set(re.findall(r'(?:src|href)="([\w./-]+\.(?:js|css))"', text))
            refs |= {m.lstrip("./") for m in re.findall(r'from "(\./[\w./-]+)"', text)}
    return refs


def test_build_makes_a_chrome_and_a_firefox_package(packages):
    assert set(packages) == {"chrome", "firefox"}
    assert packages["chrome"].name == "alt-text-chrome.zip"
    for browser, path in packages.items():
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            manifest = json.loads(z.read("manifest.json"))
            assert not [n for n in names if n.startswith(("tests/", "node_modules/")) or "package" in n], names
            assert not [n for n in names if n.endswith(".mjs") or "/." in n or n.startswith(".")], names
            missing = (_manifest_paths(manifest) | _referenced(names, lambda n: z.read(n).decode())) - set(names)
            assert not missing, f"{browser} package lacks {missing}"
        background = manifest["background"]
        if browser == "chrome":
            assert "browser_specific_settings" not in manifest and background == {
                "service_worker": "background.js", "type": "module"}
        else:
            assert manifest["browser_specific_settings"]["gecko"]["id"]
            assert background == {"scripts": ["background.js"], "type": "module"}


def test_chrome_package_loads_in_chromium(playwright, packages, tmp_path):
    unpacked = tmp_path / "chrome"
    with zipfile.ZipFile(packages["chrome"]) as z:
        z.extractall(unpacked)
    ctx = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True,
        args=[*CHROMIUM_ARGS, f"--disable-extensions-except={unpacked}", f"--load-extension={unpacked}"])
    try:  # a broken manifest fails silently: no worker
        worker = ctx.service_workers[0] if ctx.service_workers else ctx.wait_for_event("serviceworker",
                                                                                      timeout=10_000)
        assert worker.evaluate("chrome.runtime.getManifest().name") == "Alt Text for Images"
    finally:
        ctx.close()


def test_build_is_reproducible(packages, tmp_path):
    again = build_extension.build(tmp_path)
    for browser in packages:
        assert again[browser].read_bytes() == packages[browser].read_bytes()


def test_build_script_command_line(tmp_path):
    r = subprocess.run([sys.executable, "scripts/build_extension.py", "--out", str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "alt-text-chrome.zip").exists() and (tmp_path / "alt-text-firefox.zip").exists()
    assert "chrome:" in r.stdout and "firefox:" in r.stdout


# ---------------------------------------------------------------------------------------------- web-ext lint

def _lint(source_dir: Path) -> dict:
    if not WEB_EXT.exists():
        pytest.skip("needs web-ext: cd extension && npm ci")
    r = subprocess.run([str(WEB_EXT), "lint", "--source-dir", str(source_dir), "--output", "json", "--no-input"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    report = json.loads(r.stdout[r.stdout.index("{"):])
    return report


# Chrome's way into closed shadow roots, behind feature detection (Firefox has element.openOrClosedShadowRoot).
CHROME_ONLY_API = {"code": "UNSUPPORTED_API", "message": "dom.openOrClosedShadowRoot is not supported",
                   "file": "content.js"}


def _other_warnings(report) -> list[dict]:
    return [w for w in report["warnings"] if {k: w.get(k) for k in CHROME_ONLY_API} != CHROME_ONLY_API]


def test_web_ext_lint_source_tree_has_no_errors():
    report = _lint(EXTENSION)
    assert report["errors"] == [], report["errors"]
    # Besides the Chrome-only API: Firefox ignores background.service_worker (kept for Chrome in the one tree).
    assert [w["code"] for w in _other_warnings(report)] in ([], ["MANIFEST_FIELD_UNSUPPORTED"]), report["warnings"]


def test_web_ext_lint_firefox_package_is_clean(packages, tmp_path):
    with zipfile.ZipFile(packages["firefox"]) as z:
        z.extractall(tmp_path)
    report = _lint(tmp_path)
    assert report["errors"] == [] and _other_warnings(report) == [], report
