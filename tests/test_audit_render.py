"""``alt-text audit --render`` in headless Chromium, on a local site whose images exist only after its scripts run:
images and links added by script, a lazy ``data-src`` swap below the fold, an open shadow root (and a closed one,
which cannot be audited). Skips, saying why, without /usr/bin/chromium or the playwright package (never
``playwright install``: Debian's Chromium is used)."""
from __future__ import annotations

import json

import pytest

from server.audit.crawl import CrawlConfig, Crawler
from server.audit.render import DEFAULT_CHROMIUM, SHADOW_TAG, unavailable
from test_audit_crawl import LocalSite, png

why = unavailable(DEFAULT_CHROMIUM)
if why:
    pytest.skip(why, allow_module_level=True)

PIXEL = "data:image/gif;base64,R0lGODlhAQABAAAAACw="

SCRIPTED = """<div id="app">Loading…</div>
<script>
document.addEventListener("DOMContentLoaded", () => setTimeout(() => {
  const app = document.getElementById("app");
  app.innerHTML = '<img src="/img/hero.png"><a href="/lazy.html">lazy</a><a href="/shadow.html">shadow</a>';
}, 30));
</script>"""

LAZY = f"""<div style="height: 4000px">tall</div>
<img class="lazy" src="{PIXEL}" data-src="/img/photo.png">
<script>
const io = new IntersectionObserver(entries => entries.forEach(e => {{
  if (e.isIntersecting) {{ e.target.src = e.target.dataset.src; io.unobserve(e.target); }}
}}));
document.querySelectorAll("img.lazy").forEach(img => io.observe(img));
</script>"""

SHADOW = """<photo-card></photo-card><secret-card></secret-card>
<script>
customElements.define("photo-card", class extends HTMLElement {
  constructor() { super(); this.attachShadow({mode: "open"}).innerHTML =
    '<figure><img src="/img/card.png"><img src="/img/dsc.png" alt="DSC_0042.JPG"></figure>'; }
});
customElements.define("secret-card", class extends HTMLElement {
  constructor() { super(); this.attachShadow({mode: "closed"}).innerHTML = '<img src="/img/secret.png">'; }
});
</script>"""


@pytest.fixture(scope="module")
def site():
    s = LocalSite()
    s.routes["/robots.txt"] = (200, {"Content-Type": "text/plain"}, b"User-agent: *\nAllow: /\n")
    for name in ("hero", "photo", "card", "dsc", "secret"):
        s.routes[f"/img/{name}.png"] = (200, {"Content-Type": "image/png"}, png((200, 40, 40)))
    s.page("/", SCRIPTED)
    s.page("/lazy.html", LAZY)
    s.page("/shadow.html", SHADOW)
    yield s
    s.close()


def crawl(site, **kw):
    return Crawler(CrawlConfig(start_url=site.url("/"), timeout=10, concurrency=2, **kw)).run()


def test_render_audits_what_scripts_build(site):
    static = crawl(site)
    assert [p.url for p in static.pages] == [site.url("/")] and static.findings == []  # nothing before scripts

    before = len(site.log)
    st = crawl(site, render=True)
    pages = {p.url.removeprefix(site.root): p for p in st.pages}
    assert set(pages) == {"/", "/lazy.html", "/shadow.html"}  # links added by script are followed
    assert {p.status for p in st.pages} == {"ok"}, [p.error for p in st.pages]
    found = {(f["page_url"].removeprefix(site.root), f["rule"], (f["image_url"] or "").removeprefix(site.root),
              f["selector"]) for f in st.findings}
    assert ("/", "image-alt", "/img/hero.png", "#app > img") in found
    assert ("/lazy.html", "image-alt", "/img/photo.png", "html > body > img") in found  # src after the lazy swap
    shadow = {f[2]: f for f in found if f[0] == "/shadow.html"}
    assert set(shadow) == {"/img/card.png", "/img/dsc.png"}  # the closed root cannot be read
    assert shadow["/img/card.png"][1] == "image-alt"
    assert shadow["/img/dsc.png"][1] == "alt-suspicious-filename"
    assert shadow["/img/card.png"][3] == f"html > body > photo-card > {SHADOW_TAG} > figure > img:nth-of-type(1)"
    fetched = [p for _, p in site.log[before:]]
    assert sorted(p for p in fetched if not p.startswith("/img/")) == ["/", "/lazy.html", "/robots.txt",
                                                                       "/shadow.html"]  # each page fetched once
    assert not any(p.startswith("/img/") for p in fetched), fetched  # the browser downloads no images


def test_render_failure_falls_back_to_the_fetched_html(site, monkeypatch):
    from server.audit import render

    def broken(self, url, body, content_type, timeout):
        raise render.RenderError("the page could not be rendered (TimeoutError: too slow)")

    monkeypatch.setattr(render.Renderer, "__init__", lambda self, *a, **kw: None)  # no browser needed
    monkeypatch.setattr(render.Renderer, "close", lambda self: None)
    monkeypatch.setattr(render.Renderer, "render", broken)
    st = crawl(site, render=True)
    (page,) = st.pages
    assert page.status == "render_error" and "HTML as fetched was checked" in page.error


def test_cli_render_flag(site, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from server.audit.command import audit

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALT_TEXT_CACHE_PATH", str(tmp_path / "cache.sqlite3"))
    r = CliRunner().invoke(audit, [site.url("/"), "--no-suggest", "--render", "--out", "r.json"])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["options"]["render"] is True and report["summary"]["pages_audited"] == 3
    r = CliRunner().invoke(audit, [site.url("/"), "--no-suggest", "--render", "--chromium", "/no/such/chromium"])
    assert r.exit_code == 1 and "needs Chromium at /no/such/chromium" in r.output
