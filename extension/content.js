/* Content script, run after accessible-name.js in the same isolated world (classic scripts: MV3 cannot declare
 * module content scripts). Finds images that need a description, visible ones first, asks the background worker
 * for one, and writes it where screen readers read it; puts the page's own attributes back when turned off.
 * What leaves the page: image URLs, or image bytes for images the service cannot fetch. Never page text. */
(() => {
  "use strict";
  if (globalThis.altTextContentStarted) return; // a second copy in the same world would do everything twice
  globalThis.altTextContentStarted = true;

  const names = globalThis.altTextNames;
  const GENERATED = names.GENERATED; // data-alt-text="<text we wrote>": never re-captioned from its own text
  const SETTING_KEYS = ["automatic", "prefix", "minSize", "disabledSites"];
  const WATCHED = ["src", "srcset", "alt", "aria-label", "aria-labelledby"];
  const BACKLOG_DELAY_MS = 300; // off-screen images wait this long, so visible ones go first
  const MAX_BYTES = 5 * 1024 * 1024;
  const MAX_SIDE = 1024; // images drawn from the page are scaled down to this: the model sees far less anyway
  const SERVICE_FORMATS = /^image\/(?:png|jpeg|gif|webp|bmp)$|^$|^application\/octet-stream$/;
  const MAX_WRITES = 3; // per picture: a page that keeps removing our name from the same picture gets its way

  let settings = null;
  let running = false;
  let generation = 0; // bumped by stop(): answers that arrive later are dropped
  let visibility = null;
  let mutations = null;
  let backlog = new Set();
  let backlogTimer = null;
  let settled = new WeakSet(); // has a final answer (described, named, decorative, tiny, failed): not asked again
  let busy = new WeakSet();
  const originals = new WeakMap(); // element -> {attribute: value before we wrote, or null}
  let writes = new WeakMap(); // element -> {picture, count}: how often we named its current picture
  const waitingForLoad = new WeakSet();
  const pictures = new WeakMap(); // element -> how often its src/srcset changed
  let contextTarget = null;
  let liveRegion = null;

  // ---- talking to the background worker -------------------------------------------------------------------

  async function send(message) {
    try {
      return await chrome.runtime.sendMessage(message);
    } catch {
      return null; // the extension was reloaded or removed: this script is orphaned
    }
  }

  async function refresh() {
    const next = await send({ type: "settings", hostname: location.hostname });
    if (!next) return;
    const changed = settings && (next.prefix !== settings.prefix || next.minSize !== settings.minSize);
    settings = next;
    if (changed || !(next.enabled && next.automatic)) stop();
    if (next.enabled && next.automatic) start();
  }

  // ---- automatic mode: find images, visible first ---------------------------------------------------------

  function start() {
    if (running) return;
    running = true;
    visibility = new IntersectionObserver(onVisibility, { rootMargin: "200px" });
    mutations = new MutationObserver(onMutations);
    observedRoots = new WeakSet();
    watch(document.documentElement);
    scan(document);
  }

  // ---- shadow roots: images inside web components are images on the page ----------------------------------

  let observedRoots = new WeakSet();

  function watch(root) {
    if (observedRoots.has(root)) return;
    observedRoots.add(root);
    mutations.observe(root, { childList: true, subtree: true, attributes: true, attributeFilter: WATCHED });
  }

  /** An element's shadow root: open ones directly; closed ones through the extension APIs that reach them
   * (Chrome's chrome.dom.openOrClosedShadowRoot, Firefox's element.openOrClosedShadowRoot). */
  function shadowOf(el) {
    if (el.shadowRoot) return el.shadowRoot;
    try {
      if (globalThis.chrome && chrome.dom && chrome.dom.openOrClosedShadowRoot) return chrome.dom.openOrClosedShadowRoot(el);
      if (el.openOrClosedShadowRoot) return el.openOrClosedShadowRoot();
    } catch {
      // not a shadow host the API accepts
    }
    return null;
  }

  /** Elements matching ``selector`` in ``root`` and in every shadow root below it (watched for changes too). */
  function deepQuery(root, selector) {
    const found = root.querySelectorAll ? Array.from(root.querySelectorAll(selector)) : [];
    const hosts = root.querySelectorAll ? root.querySelectorAll("*") : [];
    for (const host of [root, ...hosts]) {
      const shadow = host.nodeType === 1 ? shadowOf(host) : null;
      if (!shadow) continue;
      if (running) watch(shadow);
      found.push(...deepQuery(shadow, selector));
    }
    return found;
  }

  function stop() {
    running = false;
    generation++;
    if (visibility) visibility.disconnect();
    if (mutations) mutations.disconnect();
    clearTimeout(backlogTimer);
    backlogTimer = null;
    backlog = new Set();
    settled = new WeakSet();
    busy = new WeakSet();
    writes = new WeakMap();
    deepQuery(document, `[${GENERATED}]`).forEach(restore);
    if (liveRegion) liveRegion.remove();
    liveRegion = null;
  }

  function scan(root) {
    const found = deepQuery(root, names.SELECTOR);
    if (root.matches && root.matches(names.SELECTOR)) found.push(root);
    for (const el of found) if (names.imageKind(el)) visibility.observe(el);
  }

  function onVisibility(entries) {
    for (const entry of entries) {
      if (entry.isIntersecting) consider(entry.target);
      else backlog.add(entry.target);
    }
    if (backlog.size && !backlogTimer) backlogTimer = setTimeout(drainBacklog, BACKLOG_DELAY_MS);
  }

  function drainBacklog() {
    backlogTimer = null;
    const waiting = backlog;
    backlog = new Set();
    waiting.forEach(consider);
  }

  function onMutations(records) {
    for (const r of records) {
      if (r.type === "childList") {
        r.addedNodes.forEach((node) => node.nodeType === 1 && scan(node));
        continue;
      }
      let el = r.target;
      if (el.localName === "source" && el.parentElement) el = el.parentElement.querySelector("img"); // <picture>
      if (!el || !names.imageKind(el)) continue;
      if (r.attributeName === "src" || r.attributeName === "srcset") {
        pictures.set(el, (pictures.get(el) || 0) + 1);
        restore(el); // the description was of the previous picture
      } else if (el.hasAttribute(GENERATED)) {
        if (isOurs(el)) continue; // our own write
        el.removeAttribute(GENERATED); // the page named it itself: its name wins
        originals.delete(el);
      }
      settled.delete(el);
      visibility.unobserve(el);
      visibility.observe(el); // a fresh visibility callback decides when to look at it again
    }
  }

  function consider(el) {
    if (!running || settled.has(el) || busy.has(el) || !el.isConnected) return;
    const verdict = names.classify(el, { minSize: settings.minSize });
    if (verdict.state === "hidden") return; // still observed: looked at again when it shows up
    const notLoaded = el.localName === "img" && !el.complete;
    if (verdict.state === "pending" || (verdict.state === "describe" && !sourceOf(el) && notLoaded)) {
      if (!waitingForLoad.has(el)) {
        waitingForLoad.add(el);
        el.addEventListener("load", () => { waitingForLoad.delete(el); consider(el); }, { once: true });
      }
      return;
    }
    settled.add(el);
    visibility.unobserve(el);
    if (verdict.state === "describe") describeElement(el, true);
  }

  // ---- describing one image -------------------------------------------------------------------------------

  /** Asks for a description and, when `write` and one comes, puts it on the element. Returns the answer. */
  async function describeElement(el, write) {
    const source = sourceOf(el);
    if (!source) return { error: { code: "no_source", message: "This image has no picture to read." } };
    const gen = generation;
    const picture = pictures.get(el);
    busy.add(el);
    let answer;
    try {
      answer = await ask(source);
    } finally {
      busy.delete(el);
    }
    if (gen !== generation || !el.isConnected) return answer;
    if (pictures.get(el) !== picture) consider(el); // a new picture arrived while this one was being described
    else if (write && answer && answer.alt) inject(el, answer.alt);
    return answer;
  }

  /** The picture of an image element: {url}, or {svg} for inline SVG (which is drawn, having no URL). */
  function sourceOf(el) {
    const kind = names.imageKind(el);
    if (kind === "img") return el.currentSrc || el.src ? { url: el.currentSrc || el.src, element: el } : null;
    if (kind === "input") return el.src ? { url: el.src } : null;
    if (kind === "svg") return { svg: el };
    // role="img" on another element: an image inside it, or its CSS background.
    const img = el.querySelector("img");
    if (img && (img.currentSrc || img.src)) return { url: img.currentSrc || img.src, element: img };
    const svg = el.querySelector("svg");
    if (svg) return { svg };
    const bg = /url\(["']?(.+?)["']?\)/.exec(getComputedStyle(el).backgroundImage);
    return bg ? { url: new URL(bg[1], document.baseURI).href } : null;
  }

  /** The worker's cache first, then the URL (the service fetches it), the bytes when the worker asks, or at once
   * for an image behind the user's login: its URL never leaves the browser. */
  async function ask(source) {
    const url = /^https?:/i.test(source.url || "") ? source.url : undefined; // blob: and data: go as bytes
    if (url) {
      const hit = await send({ type: "cached", url }); // in the browser: no request for an image it already knows
      if (hit && !hit.error) return hit;
    }
    if (url && !(await needsCookies(url))) {
      const first = await send({ type: "describe", url });
      if (!first || !first.needBytes) return first || unreachable();
    }
    const data = await bytesOf(source);
    if (!data) return { error: { code: "unreadable", message: "The image could not be read in the page." } };
    return (await send({ type: "describe", url, data })) || unreachable();
  }

  /** True when the site refuses the image without the user's cookies (a members-only picture). Only images of
   * the page's own origin can be asked without cookies from here (others are opaque to the page); a HEAD request
   * costs no image download. Anything unclear counts as public, and the bytes still follow if the service fails. */
  async function needsCookies(url) {
    try {
      if (new URL(url).origin !== location.origin) return false;
      const response = await fetch(url, { method: "HEAD", credentials: "omit", cache: "no-store" });
      return response.status === 401 || response.status === 403;
    } catch {
      return false;
    }
  }

  function unreachable() {
    return { error: { code: "extension_error", message: "The extension's background worker did not answer." } };
  }

  /** A data: URL of the image, read as the page reads it (its cookies, same-origin rules), at most MAX_BYTES. */
  async function bytesOf(source) {
    if (source.svg) return drawSvg(source.svg);
    try {
      const response = await fetch(source.url, { credentials: "include" });
      if (response.ok) {
        const blob = await response.blob();
        if (blob.size <= MAX_BYTES && SERVICE_FORMATS.test(blob.type)) return await asDataUrl(blob);
      }
    } catch {
      // Cross-origin without CORS: the pixels on the page may still be readable below.
    }
    const img = source.element;
    return img && img.complete && img.naturalWidth ? draw(img, img.naturalWidth, img.naturalHeight) : null;
  }

  function asDataUrl(blob) {
    return new Promise((resolve) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => resolve(null);
      reader.readAsDataURL(blob);
    });
  }

  /** JPEG of what an image shows, scaled down; null when the canvas is tainted by a cross-origin picture. */
  function draw(image, width, height) {
    const scale = Math.min(1, MAX_SIDE / Math.max(width, height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(width * scale));
    canvas.height = Math.max(1, Math.round(height * scale));
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff"; // transparency on white, as the service does
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    try {
      ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
      return canvas.toDataURL("image/jpeg", 0.9);
    } catch {
      return null;
    }
  }

  async function drawSvg(svg) {
    const box = svg.getBoundingClientRect();
    const clone = svg.cloneNode(true);
    clone.setAttribute("xmlns", "http://www.w3.org/2000/svg");
    clone.setAttribute("width", box.width);
    clone.setAttribute("height", box.height);
    clone.style.color = getComputedStyle(svg).color; // for fill="currentColor"
    const image = new Image();
    image.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(new XMLSerializer().serializeToString(clone));
    try {
      await image.decode();
    } catch {
      return null;
    }
    return draw(image, box.width, box.height);
  }

  // ---- writing and restoring names ------------------------------------------------------------------------

  const nameAttribute = (el) => (["img", "input"].includes(names.imageKind(el)) ? "alt" : "aria-label");

  function isOurs(el) {
    return el.hasAttribute(GENERATED) && el.getAttribute(nameAttribute(el)) === el.getAttribute(GENERATED);
  }

  function inject(el, description) {
    // Counted per picture, not per element: a slideshow that changes src legitimately needs a name per slide.
    const picture = pictures.get(el) || 0;
    const seen = writes.get(el);
    const count = seen && seen.picture === picture ? seen.count : 0;
    if (count >= MAX_WRITES) return;
    writes.set(el, { picture, count: count + 1 });
    const text = withPrefix(description);
    const saved = originals.get(el) || {};
    const set = (attr, value) => {
      if (!(attr in saved)) saved[attr] = el.getAttribute(attr);
      if (value === null) el.removeAttribute(attr);
      else el.setAttribute(attr, value);
    };
    // Only suspicious or empty names get here; ARIA names would outrank the one we write, so they go.
    for (const attr of ["aria-labelledby", "aria-label"]) if (el.hasAttribute(attr)) set(attr, null);
    set(nameAttribute(el), text);
    if (names.imageKind(el) === "svg" && !el.hasAttribute("role")) set("role", "img");
    originals.set(el, saved);
    el.setAttribute(GENERATED, text);
  }

  function restore(el) {
    const saved = originals.get(el);
    if (saved && isOurs(el)) {
      for (const [attr, value] of Object.entries(saved)) {
        if (value === null) el.removeAttribute(attr);
        else el.setAttribute(attr, value);
      }
    }
    el.removeAttribute(GENERATED);
    originals.delete(el);
  }

  // ---- on demand: context menu and keyboard command -------------------------------------------------------

  function imageAround(el) {
    for (let e = el; e; e = e.parentElement) if (names.imageKind(e)) return e;
    return null;
  }

  function imageForMenu(srcUrl) {
    const hit = imageAround(contextTarget);
    const source = hit && sourceOf(hit);
    if (hit && (!srcUrl || !source || !source.url || source.url === srcUrl)) return hit;
    return Array.from(document.images).find((i) => i.currentSrc === srcUrl || i.src === srcUrl) || null;
  }

  function focusedImage() {
    const el = document.activeElement;
    if (!el || el === document.body || el === document.documentElement) return null;
    // A focused image, or the image inside a focused link or button.
    return imageAround(el) || Array.from(el.querySelectorAll(names.SELECTOR)).find(names.imageKind) || null;
  }

  async function describeOnDemand(el) {
    if (!settings) await refresh();
    if (!settings) return;
    if (!settings.enabled) return announce("Alt text is turned off for this site.");
    if (!el) return announce("There is no image here to describe.");
    // Written onto the image only where it has no meaningful name; always announced.
    const state = names.classify(el, { minSize: 1 }).state;
    const answer = await describeElement(el, ["describe", "pending", "hidden", "generated"].includes(state));
    announceAnswer(answer);
  }

  /** The service's words, spoken as it decided them: at most the user's own prefix before them (none by default). */
  function withPrefix(description) {
    return `${(settings && settings.prefix) || ""} ${description}`.trim();
  }

  function announceAnswer(answer) {
    if (answer && answer.alt) announce(withPrefix(answer.alt));
    else if (answer && answer.withheld) announce("No description available.");
    else announce(`Could not describe this image. ${(answer && answer.error && answer.error.message) || ""}`.trim());
  }

  async function announceLater(answer) {
    if (!settings) await refresh();
    announceAnswer(answer);
  }

  /** Says `text` through a polite, visually hidden live region. */
  function announce(text) {
    if (!liveRegion || !liveRegion.isConnected) {
      liveRegion = document.createElement("div");
      liveRegion.setAttribute("role", "status");
      liveRegion.setAttribute("aria-live", "polite");
      liveRegion.setAttribute("data-alt-text-live", "");
      liveRegion.style.cssText = "position:fixed;width:1px;height:1px;margin:-1px;padding:0;border:0;" +
        "overflow:hidden;clip-path:inset(50%);white-space:nowrap";
      document.body.append(liveRegion);
    }
    const region = liveRegion;
    region.textContent = "";
    // Screen readers announce changes to a region that already exists, so the text comes a moment later.
    setTimeout(() => { region.textContent = text; }, 150);
  }

  chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
    if (message.type === "describe-image") describeOnDemand(imageForMenu(message.srcUrl));
    else if (message.type === "describe-focused") describeOnDemand(focusedImage());
    else if (message.type === "announce") announceLater(message.result);
    else if (message.type === "hostname") sendResponse({ hostname: location.hostname });
    return false;
  });

  document.addEventListener("contextmenu", (e) => { contextTarget = e.composedPath()[0]; }, true);
  chrome.storage.onChanged.addListener((changes, area) => {
    if (area === "local" && SETTING_KEYS.some((k) => k in changes)) refresh();
  });
  refresh();
})();
