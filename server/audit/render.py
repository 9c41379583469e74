"""``alt-text audit --render``: the page as a browser builds it, for sites whose images are added by script.

The crawler still fetches every page itself (status, redirects, robots.txt, the byte cap and the deadline decide as
without ``--render``); an HTML page is then loaded in headless Chromium (Playwright, on the system's Chromium: no
browser download) with the bytes the crawler fetched served as the document, so the page is fetched once and the
browser renders exactly what was checked. Its scripts run; the page is scrolled to the bottom and back (so lazy
loaders swap ``data-src`` into ``src``) and the audit waits until the network has been quiet for ``quiet_ms`` (or
the page's deadline). Images, media and fonts are not downloaded: the rules need the markup, not the pixels.

The rendered DOM is serialised with each *open* shadow root grafted into its host as a first child
``<alt-text-shadow-root>`` element, so the rules see images in shadow DOM and a finding's selector shows the way
in (``photo-card > alt-text-shadow-root > img``). Closed shadow roots cannot be read from outside and are not
audited.

With ``graphics`` (the audit sets it when suggestions are on), the canvases and role-less svgs that may be an
unnamed graphic (rule ``graphic-unnamed``: no role, no aria-label or aria-labelledby, not in a button, a link or
under aria-hidden, shown and larger than a tiny icon), then those with a name to judge their pixels against (role
none or img, an svg's graphics-document; the same places and sizes), at most :data:`MAX_GRAPHICS` a page, are
photographed where they are on the page: their pixels are what a script drew on a canvas, which no markup says.
Each is marked with a ``data-alt-text-graphic`` attribute that the crawler takes off again before the rules read
the DOM.

One browser serves the whole crawl: an asyncio loop on its own thread drives it, and the crawler's worker threads
submit pages to it, so ``--concurrency`` pages render at once, each in its own tab.
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass

DEFAULT_CHROMIUM = "/usr/bin/chromium"
SHADOW_TAG = "alt-text-shadow-root"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--mute-audio",
                 # no image loads at all (the route below aborts them too, but Chromium's preload scanner can
                 # start some before a route sees them); img elements and their src stay in the DOM
                 "--blink-settings=imagesEnabled=false"]
_NOT_FETCHED = frozenset({"image", "media", "font"})
GRAPHIC_MARK = "data-alt-text-graphic"
MAX_GRAPHICS = 12  # screenshots a page
TINY_PX = 16

# Mark the graphics worth a screenshot (the rules decide which are findings or judged; these are the candidates):
# those without a name first (graphic-unnamed), then named ones (role none or img, an svg's graphics-document).
_MARK_GRAPHICS = """([mark, tiny, most]) => {
  const unnamed = [], named = [];
  const roles = {canvas: ["", "img"], svg: ["", "img", "graphics-document"]};
  for (const el of document.querySelectorAll("canvas, svg")) {
    const tag = el.tagName.toLowerCase();
    if (tag === "svg" && el.parentElement && el.parentElement.closest("svg")) continue;
    const role = (el.getAttribute("role") || "").trim().toLowerCase().split(/\\s+/)[0];
    const labelled = el.hasAttribute("aria-label") || el.hasAttribute("aria-labelledby");
    const titled = (el.getAttribute("title") || "").trim() ||
      (tag === "svg" && Array.from(el.children).some(c => c.tagName.toLowerCase() === "title" && c.textContent.trim()));
    let list = null;
    if (!role && !labelled) list = unnamed;
    if (roles[tag].includes(role) && ((el.getAttribute("aria-label") || "").trim() ||
        el.hasAttribute("aria-labelledby") || titled)) list = list || named;
    if (!list || el.getAttribute("aria-hidden") === "true") continue;
    const up = el.parentElement;
    const around = '[aria-hidden="true"], button, a[href], [role="button"], [role="link"], [role="img"]';
    if (up && up.closest(around)) continue;
    const r = el.getBoundingClientRect();
    if (r.width <= tiny && r.height <= tiny) continue;
    if (el.checkVisibility && !el.checkVisibility({opacityProperty: true, visibilityProperty: true})) continue;
    list.push(el);
  }
  const marked = unnamed.concat(named).slice(0, most);
  marked.forEach((el, n) => el.setAttribute(mark, String(n)));
  return marked.length;
}"""

# Scroll through the page (lazy loaders watch the viewport), then back to the top.
_SCROLL = """async () => {
  const frame = () => new Promise(r => requestAnimationFrame(() => r()));
  const step = Math.max(200, window.innerHeight);
  const height = () => Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0);
  for (let y = 0, n = 0; y < height() && n < 200; y += step, n++) { window.scrollTo(0, y); await frame(); }
  window.scrollTo(0, height()); await frame(); await frame();
  window.scrollTo(0, 0); await frame();
}"""

# The document with open shadow roots grafted into their hosts (see the module docstring).
_SERIALISE = """(tag) => {
  const copy = document.documentElement.cloneNode(true);
  let roots = 0;
  const graft = (orig, clone) => {
    const oc = orig.children, cc = clone.children;
    for (let i = 0; i < oc.length && i < cc.length; i++) graft(oc[i], cc[i]);
    if (orig.shadowRoot) {
      roots++;
      const box = document.createElement(tag);
      for (const n of orig.shadowRoot.childNodes) box.appendChild(n.cloneNode(true));
      graft(orig.shadowRoot, box);
      clone.insertBefore(box, clone.firstChild);
    }
  };
  graft(document.documentElement, copy);
  return {html: "<!DOCTYPE html>" + copy.outerHTML, roots: roots, url: location.href};
}"""


class RenderError(Exception):
    """The page could not be rendered (it is then reported with this message)."""


@dataclass
class Rendered:
    html: str
    shadow_roots: int
    url: str  # where the browser ended (scripts may navigate)
    graphics: dict = None  # GRAPHIC_MARK's value -> PNG screenshot of that element (with ``graphics`` on)


def unavailable(executable: str = DEFAULT_CHROMIUM) -> str | None:
    """Why --render cannot work here, or None."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "--render needs the playwright package (pip install -e \".[render]\"; no browser download is needed)"
    if not (os.path.isfile(executable) and os.access(executable, os.X_OK)):
        return f"--render needs Chromium at {executable} (apt-get install chromium, or give --chromium PATH)"
    return None


class Renderer:
    """One headless Chromium, driven from its own thread; :meth:`render` may be called from any thread."""

    def __init__(self, executable: str = DEFAULT_CHROMIUM, user_agent: str | None = None, quiet_ms: int = 150,
                 start_timeout: float = 30.0, graphics: bool = False):
        why = unavailable(executable)
        if why:
            raise RenderError(why)
        self.quiet_ms, self.graphics = quiet_ms, graphics
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="audit-render", daemon=True)
        self._thread.start()
        try:
            self._call(self._start(executable, user_agent), start_timeout)
        except Exception as e:
            self.close()
            raise RenderError(f"Chromium at {executable} did not start ({type(e).__name__}: {e})"[:500]) from None

    def _call(self, coro, timeout: float):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start(self, executable: str, user_agent: str | None) -> None:
        from playwright.async_api import async_playwright

        self._pw = await async_playwright().start()
        self._browser = await self._pw.chromium.launch(executable_path=executable, headless=True,
                                                       args=CHROMIUM_ARGS)
        ua = None
        if user_agent:
            page = await self._browser.new_page()
            ua = f"{await page.evaluate('navigator.userAgent')} {user_agent}"
            await page.close()
        self._context = await self._browser.new_context(user_agent=ua, service_workers="block",
                                                        accept_downloads=False, java_script_enabled=True)

    def render(self, url: str, body: bytes, content_type: str, timeout: float) -> Rendered:
        """Load ``url`` with ``body`` as its document and return the rendered DOM. Raises RenderError."""
        deadline = time.monotonic() + timeout
        try:
            return self._call(self._render(url, body, content_type, deadline), timeout + 5)
        except RenderError:
            raise
        except Exception as e:  # noqa: BLE001 - Playwright's errors, timeouts
            raise RenderError(f"the page could not be rendered ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})"[:300]) from None

    async def _render(self, url: str, body: bytes, content_type: str, deadline: float) -> Rendered:
        page = await self._context.new_page()
        inflight: set = set()
        last_change = [time.monotonic()]
        served = [False]

        def track(request, delta):
            (inflight.add if delta > 0 else inflight.discard)(request)
            last_change[0] = time.monotonic()

        page.on("request", lambda r: track(r, 1))
        page.on("requestfinished", lambda r: track(r, -1))
        page.on("requestfailed", lambda r: track(r, -1))

        async def route(route):
            req = route.request
            if not served[0] and req.is_navigation_request() and req.frame == page.main_frame:
                served[0] = True  # the document the crawler already fetched and checked
                await route.fulfill(status=200, body=body, headers={"Content-Type": content_type})
            elif req.resource_type in _NOT_FETCHED:
                await route.abort()
            else:
                await route.continue_()

        try:
            await page.route("**/*", route)
            left = lambda: max(0.05, deadline - time.monotonic())  # noqa: E731
            await page.goto(url, wait_until="load", timeout=1000 * left())
            await asyncio.wait_for(page.evaluate(_SCROLL), left())
            while time.monotonic() < deadline:  # the network quiet for quiet_ms: scripts have what they fetched
                if not inflight and time.monotonic() - last_change[0] >= self.quiet_ms / 1000:
                    break
                await asyncio.sleep(0.02)
            shots = await self._screenshots(page, deadline) if self.graphics else {}
            out = await asyncio.wait_for(page.evaluate(_SERIALISE, SHADOW_TAG), left())
            return Rendered(out["html"], int(out["roots"]), out["url"], shots)
        finally:
            try:
                await page.close()
            except Exception:  # noqa: BLE001 - the browser may be gone
                pass

    async def _screenshots(self, page, deadline: float) -> dict:
        """PNG screenshots of the graphics _MARK_GRAPHICS marks, within the page's deadline (one that fails or
        runs out of time has none)."""
        shots: dict = {}
        try:
            marked = await asyncio.wait_for(page.evaluate(_MARK_GRAPHICS, [GRAPHIC_MARK, TINY_PX, MAX_GRAPHICS]),
                                            max(0.05, deadline - time.monotonic()))
        except Exception:  # noqa: BLE001 - no screenshots for this page
            return shots
        for i in range(int(marked or 0)):
            left = deadline - time.monotonic()
            if left <= 0.2:
                break
            try:
                handle = await page.query_selector(f'[{GRAPHIC_MARK}="{i}"]')
                if handle is not None:
                    shots[str(i)] = await handle.screenshot(type="png", timeout=1000 * min(left, 3.0),
                                                            animations="disabled")
            except Exception:  # noqa: BLE001 - an element that moved away or a timeout: no pixels for it
                continue
        return shots

    def close(self) -> None:
        async def stop():
            for name in ("_context", "_browser"):
                obj = getattr(self, name, None)
                if obj is not None:
                    try:
                        await obj.close()
                    except Exception:  # noqa: BLE001
                        pass
            if getattr(self, "_pw", None) is not None:
                await self._pw.stop()

        if self._loop.is_running():
            try:
                self._call(stop(), 15)
            except Exception:  # noqa: BLE001 - closing a dead browser
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
