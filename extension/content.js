/* Content script, run after accessible-name.js in the same isolated world (classic scripts: MV3 cannot declare
 * module content scripts). Finds images that need a description, visible ones first, asks the background worker
 * for one, and writes it where screen readers read it; puts the page's own attributes back when turned off.
 * Buttons and links whose only content is an unnamed icon get the icon's meaning as their name (aria-label),
 * when the service can say it (its `control_name`).
 * What leaves the page: image URLs, or image bytes for images the service cannot fetch, or an icon drawn as
 * the page shows it, with the names the page's code gives that icon (its classes, a ligature's word, a sprite's
 * id: names.iconMarkup). Never page text. */
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
  const ICON_SIDE = 64; // px: icons are drawn this big on their longer side, keeping their aspect
  const ICON_MAX = 48; // px: a bigger image in an unnamed link is a picture: described when it names no control
  const PICTURELESS_KINDS = ["icon", "logo", "blank"]; // the service's kinds that say no more than "an icon"
  const WATCH_SELECTOR = `${names.SELECTOR}, ${names.CONTROL_SELECTOR}`;
  // What an image may be in when a description is written on it: not named by the page, nor decorative.
  const WRITABLE = ["describe", "pending", "hidden", "generated"];
  // This document, for the worker's "still waiting?" before it sends a refused request again.
  const PAGE = Math.random().toString(36).slice(2);

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
  const written = new WeakMap(); // element -> the attribute that holds the name we wrote
  let iconAnswers = new Map(); // drawn icon (data: URL) -> the service's answer: repeated icons cost one request
  let writes = new WeakMap(); // element -> {picture, count}: how often we named its current picture
  const waitingForLoad = new WeakSet();
  const waitedForFonts = new WeakSet();
  const pictures = new WeakMap(); // element -> how often its src/srcset changed
  let contextTarget = null;
  let liveRegion = null;

  // ---- talking to the background worker -------------------------------------------------------------------

  /** The answers this page waits for: those asked since its last stop() (which drops the others). */
  const pageId = () => `${PAGE}:${generation}`;

  async function send(message) {
    try {
      // A description is asked for this page and generation, so the worker can tell when nobody waits for it.
      return await chrome.runtime.sendMessage(message.type === "describe" ? { ...message, page: pageId() } : message);
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
    iconAnswers = new Map();
    deepQuery(document, `[${GENERATED}]`).forEach(restore);
    if (liveRegion) liveRegion.remove();
    liveRegion = null;
  }

  const watched = (el) => names.imageKind(el) || names.controlKind(el);

  function scan(root) {
    const found = deepQuery(root, WATCH_SELECTOR);
    if (root.matches && root.matches(WATCH_SELECTOR)) found.push(root);
    for (const el of found) if (watched(el)) visibility.observe(el);
  }

  /** Looks at an element again when it next shows (a fresh visibility callback decides when). */
  function recheck(el) {
    settled.delete(el);
    visibility.unobserve(el);
    visibility.observe(el);
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
        // New content in a control (text, another icon, a script's svg for its <i>): it is looked at again.
        const control = r.target.closest && r.target.closest(names.CONTROL_SELECTOR);
        if (control && !busy.has(control)) [control, ...deepQuery(control, names.SELECTOR)].forEach(recheck);
        continue;
      }
      let el = r.target;
      if (el.localName === "source" && el.parentElement) el = el.parentElement.querySelector("img"); // <picture>
      if (!el || !watched(el)) continue;
      if (r.attributeName === "src" || r.attributeName === "srcset") {
        pictures.set(el, (pictures.get(el) || 0) + 1);
        restore(el); // the description was of the previous picture
      } else if (el.hasAttribute(GENERATED)) {
        if (isOurs(el)) continue; // our own write
        el.removeAttribute(GENERATED); // the page named it itself: its name wins
        originals.delete(el);
        written.delete(el);
      }
      recheck(el);
    }
  }

  function consider(el) {
    if (!running || settled.has(el) || busy.has(el) || !el.isConnected) return;
    if (names.controlKind(el)) return considerControl(el);
    if (names.iconOwner(el)) { // the icon of an unnamed button or link: considerControl asks for both
      settled.add(el);
      visibility.unobserve(el);
      return;
    }
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
    const answer = await whileBusy(el, ask(source));
    if (gen !== generation || !el.isConnected) return answer;
    if (pictures.get(el) !== picture) consider(el); // a new picture arrived while this one was being described
    // The answer may come long after the question (a busy service is asked again later): the page may have
    // named the image meanwhile, and its name wins.
    else if (write && answer && answer.alt && writable(el)) inject(el, withPrefix(answer.alt));
    return answer;
  }

  const writable = (el) => WRITABLE.includes(names.classify(el, { minSize: 1 }).state);

  // ---- naming icon-only buttons and links -----------------------------------------------------------------

  function considerControl(el) {
    // Icon fonts still loading are drawn in a fallback font: ligatures would look like words. Waited for once
    // (a page that keeps loading fonts could keep the status at "loading").
    if (document.fonts && document.fonts.status === "loading" && !waitedForFonts.has(el)) {
      waitedForFonts.add(el);
      return later(el, document.fonts.ready);
    }
    const verdict = names.classifyControl(el);
    if (verdict.generated && verdict.state !== "describe") restore(el); // it shows text now, or has its own name
    if (verdict.state === "hidden") return; // still observed: looked at again when it shows up
    const image = verdict.state === "describe" && verdict.icon.element;
    if (image && image.localName === "img" && !image.complete) return later(el, new Promise((resolve) => {
      image.addEventListener("load", resolve, { once: true });
      image.addEventListener("error", resolve, { once: true });
    }));
    settled.add(el);
    visibility.unobserve(el);
    if (verdict.state === "describe" && !verdict.generated) describeControl(el, verdict.icon);
  }

  function later(el, ready) {
    if (waitingForLoad.has(el)) return;
    waitingForLoad.add(el);
    ready.then(() => {
      waitingForLoad.delete(el);
      consider(el);
    });
  }

  /** Asks what the control's icon means; writes the answer's control_name as the control's name. Without one,
   * a picture in a link (bigger than an icon, and not an icon, logo or blank to the service either) gets its
   * description as an image would; an icon gets nothing ("Icon." names no link). */
  async function describeControl(control, icon) {
    const gen = generation;
    const answer = await whileBusy(control, askIcon(icon));
    if (gen !== generation || !control.isConnected || !answer || answer.error) return;
    const now = names.classifyControl(control); // the page may have named it, or changed it, meanwhile
    if (now.state !== "describe" || now.generated || now.icon.element !== icon.element) return;
    if (typeof answer.control_name === "string" && names.isUsableControlName(answer.control_name)) {
      inject(control, answer.control_name.replace(/\s+/g, " ").trim(), "aria-label");
      return;
    }
    const box = icon.element.getBoundingClientRect();
    const picture = icon.type === "img" && Math.max(box.width, box.height) > ICON_MAX &&
      !PICTURELESS_KINDS.includes(answer.kind);
    const state = picture && names.classify(icon.element, { minSize: settings.minSize }).state;
    if (state === "describe" && answer.alt) inject(icon.element, withPrefix(answer.alt));
  }

  /** The service's answer for an icon: drawn as the page shows it (svg, font glyphs, CSS images, svg files), or
   * an image file's URL or bytes as for any image. */
  async function askIcon(icon) {
    const markup = names.iconMarkup(icon) || undefined; // what the page's code calls it: the service reads it
    const data = await drawIcon(icon).catch(() => null);
    if (!data) {
      const url = icon.type === "img" ? icon.element.currentSrc || icon.element.src : icon.url;
      if (!url) return null;
      const absolute = new URL(url, document.baseURI).href;
      return ask({ url: absolute, element: icon.element.localName === "img" ? icon.element : undefined, markup });
    }
    const key = markup ? `${data}\n${JSON.stringify(markup)}` : data;
    if (!iconAnswers.has(key)) {
      const answer = send({ type: "describe", data, markup }).then((a) => a || unreachable());
      iconAnswers.set(key, answer);
      answer.then((a) => a.error && iconAnswers.get(key) === answer && iconAnswers.delete(key));
    }
    return iconAnswers.get(key);
  }

  /** `work`'s result; meanwhile the element is busy (not looked at again). */
  async function whileBusy(el, work) {
    busy.add(el);
    try {
      return await work;
    } finally {
      busy.delete(el);
    }
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
    const { markup } = source; // a control's icon: its answer depends on its markup too
    if (url) {
      const hit = await send({ type: "cached", url, markup }); // in the browser: no request for an image it knows
      if (hit && !hit.error) return hit;
    }
    if (url && !(await needsCookies(url))) {
      const first = await send({ type: "describe", url, markup });
      if (!first || !first.needBytes) return first || unreachable();
    }
    const data = await bytesOf(source);
    if (!data) return { error: { code: "unreadable", message: "The image could not be read in the page." } };
    return (await send({ type: "describe", url, data, markup })) || unreachable();
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
    const image = await svgPicture(svg, box.width, box.height);
    return image && draw(image, box.width, box.height);
  }

  // ---- drawing icons as the page shows them ---------------------------------------------------------------

  const SVG = "http://www.w3.org/2000/svg";
  // What CSS decides about an svg's look: copied as computed (currentColor resolved) onto the copy that is drawn.
  const SVG_PAINT = ["fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-opacity",
    "stroke-linecap", "stroke-linejoin", "stroke-miterlimit", "stroke-dasharray", "stroke-dashoffset", "opacity",
    "color", "visibility", "stop-color", "stop-opacity", "clip-rule", "paint-order", "font-family", "font-size",
    "font-weight", "font-style"];
  // Content that is drawn only where something refers to it: keeps its own attributes, inherits where it is used.
  const REFERENCED = "defs, symbol, clipPath, mask, marker, pattern, linearGradient, radialGradient, filter";
  const sprites = new Map(); // sprite file URL -> its parsed document (promise)

  /** An <img> of the svg as the page draws it, `width` x `height` px: its computed paint on every element,
   * `<use>` of a symbol elsewhere (in the page or a sprite file) copied in, since an svg drawn as an image can
   * reach nothing outside itself. Null when it cannot be drawn. */
  async function svgPicture(svg, width, height) {
    const box = svg.getBoundingClientRect();
    const clone = svg.cloneNode(true);
    const from = [svg, ...svg.querySelectorAll("*")];
    const to = [clone, ...clone.querySelectorAll("*")];
    from.forEach((el, i) => {
      if (el !== svg && el.closest(REFERENCED)) return;
      const style = getComputedStyle(el);
      if (el !== svg && style.display === "none") return to[i].remove();
      to[i].setAttribute("style", SVG_PAINT.map((p) => `${p}:${style.getPropertyValue(p)}`).join(";"));
    });
    for (const use of clone.querySelectorAll("use")) await inlineUse(use, clone);
    for (const el of [clone, ...clone.querySelectorAll("*")]) { // currentColor outside the copied styles too
      for (const attr of ["fill", "stroke", "stop-color", "color"]) {
        if (/^currentcolor$/i.test(el.getAttribute(attr) || "")) el.setAttribute(attr, getComputedStyle(svg).color);
      }
    }
    clone.setAttribute("xmlns", SVG);
    if (!clone.hasAttribute("viewBox")) clone.setAttribute("viewBox", `0 0 ${box.width} ${box.height}`);
    clone.setAttribute("width", width);
    clone.setAttribute("height", height);
    return loadImage("data:image/svg+xml;charset=utf-8," +
      encodeURIComponent(new XMLSerializer().serializeToString(clone)));
  }

  /** Replaces <use href="#id"> or <use href="sprite.svg#id"> by a copy of what it shows. */
  async function inlineUse(use, clone) {
    const href = use.getAttribute("href") || use.getAttributeNS("http://www.w3.org/1999/xlink", "href") || "";
    const hash = href.indexOf("#");
    if (hash < 0) return;
    const id = decodeURIComponent(href.slice(hash + 1));
    if (hash === 0 && clone.querySelector(`[id="${CSS.escape(id)}"]`)) return; // inside the copy already
    let source = document;
    if (hash > 0) {
      const url = new URL(href.slice(0, hash), document.baseURI).href;
      if (!sprites.has(url)) {
        sprites.set(url, fetch(url, { credentials: "include" }).then((r) => (r.ok ? r.text() : ""))
          .then((text) => new DOMParser().parseFromString(text, "image/svg+xml")).catch(() => null));
      }
      source = await sprites.get(url);
    }
    const target = source && source.getElementById(id);
    if (!target) return;
    const local = target.localName === "symbol" || target.localName === "svg";
    const copy = document.createElementNS(SVG, local ? "svg" : "g");
    if (local) {
      for (const attr of ["viewBox", "preserveAspectRatio"]) {
        if (target.hasAttribute(attr)) copy.setAttribute(attr, target.getAttribute(attr));
      }
      for (const attr of ["x", "y", "width", "height"]) {
        copy.setAttribute(attr, use.getAttribute(attr) || (attr === "x" || attr === "y" ? "0" : "100%"));
      }
    } else {
      copy.setAttribute("transform", `translate(${use.getAttribute("x") || 0} ${use.getAttribute("y") || 0})`);
    }
    for (const child of target.childNodes) copy.append(document.importNode(child, true));
    if (use.hasAttribute("style")) copy.setAttribute("style", use.getAttribute("style"));
    use.replaceWith(copy);
  }

  /** A PNG data: URL of the icon, ICON_SIDE px on its longer side, or null to send the image file instead. */
  async function drawIcon(icon) {
    const el = icon.element;
    let canvas = null;
    if (icon.type === "svg") {
      const box = el.getBoundingClientRect();
      const [width, height] = iconSize(box.width, box.height);
      const image = await svgPicture(el, width, height);
      canvas = image && onCanvas(width, height, (ctx) => ctx.drawImage(image, 0, 0, width, height));
    } else if (icon.type === "glyph") {
      canvas = await drawGlyph(icon.text, getComputedStyle(el, icon.pseudo));
    } else if (icon.type === "text-glyph") {
      canvas = await drawGlyph(icon.text, getComputedStyle(el));
    } else if (icon.type === "background") {
      canvas = await drawBackground(el, icon.url);
    } else if (icon.type === "content-image" || isSvgImage(el)) {
      const image = await loadImage(icon.url || el.currentSrc || el.src);
      const box = el.getBoundingClientRect();
      const [width, height] = iconSize(image ? image.naturalWidth || box.width : 0, image ? image.naturalHeight
        || box.height : 0);
      canvas = image && width && onCanvas(width, height, (ctx) => ctx.drawImage(image, 0, 0, width, height));
    }
    return canvas && iconPng(canvas, el);
  }

  const isSvgImage = (el) => ["img", "input"].includes(el.localName) &&
    /^data:image\/svg\+xml|\.svg(?:[?#]|$)/i.test(el.currentSrc || el.src);

  function iconSize(width, height) {
    const scale = ICON_SIDE / Math.max(width, height);
    return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
  }

  function onCanvas(width, height, paint) {
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    paint(canvas.getContext("2d"));
    return canvas;
  }

  async function loadImage(url) {
    const image = new Image();
    image.src = new URL(url, document.baseURI).href;
    try {
      await image.decode();
      return image;
    } catch {
      return null;
    }
  }

  /** An icon font's glyph (or ligature) in the page's own font, colour and weight, its inked box with a margin
   * of an eighth on each side. */
  async function drawGlyph(text, style) {
    const font = (px) => `${style.fontStyle} ${style.fontWeight} ${px}px ${style.fontFamily}`;
    try {
      await document.fonts.load(font(ICON_SIDE), text);
    } catch {
      // an unknown font: measured below in whatever the browser has
    }
    const probe = document.createElement("canvas").getContext("2d");
    probe.font = font(100);
    const m = probe.measureText(text);
    const width = m.actualBoundingBoxLeft + m.actualBoundingBoxRight;
    const height = m.actualBoundingBoxAscent + m.actualBoundingBoxDescent;
    if (!(width > 0 && height > 0)) return null;
    const margin = ICON_SIDE / 8;
    const scale = (ICON_SIDE - 2 * margin) / Math.max(width, height);
    return onCanvas(Math.round(width * scale + 2 * margin), Math.round(height * scale + 2 * margin), (ctx) => {
      ctx.font = font(100 * scale);
      ctx.fillStyle = style.color;
      ctx.fillText(text, margin + m.actualBoundingBoxLeft * scale, margin + m.actualBoundingBoxAscent * scale);
    });
  }

  /** A CSS background image as the element shows it: its background-size and -position, so a sprite sheet
   * gives the one icon the element shows. */
  async function drawBackground(el, url) {
    const image = await loadImage(url);
    if (!image) return null;
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect();
    const natural = [image.naturalWidth || box.width, image.naturalHeight || box.height];
    const [w, h] = backgroundSize(style.backgroundSize, [box.width, box.height], natural);
    const at = (value, room) => (/%$/.test(value) ? (room * parseFloat(value)) / 100 : parseFloat(value) || 0);
    const x = at(style.backgroundPositionX, box.width - w);
    const y = at(style.backgroundPositionY, box.height - h);
    const [width, height] = iconSize(box.width, box.height);
    const scale = width / box.width;
    return onCanvas(width, height, (ctx) => ctx.drawImage(image, x * scale, y * scale, w * scale, h * scale));
  }

  function backgroundSize(value, [bw, bh], [nw, nh]) {
    if (value === "contain" || value === "cover") {
      const scale = (value === "contain" ? Math.min : Math.max)(bw / nw, bh / nh);
      return [nw * scale, nh * scale];
    }
    const [sw, sh = "auto"] = value.split(/\s+/);
    const length = (v, room) => (/%$/.test(v) ? (room * parseFloat(v)) / 100 : parseFloat(v));
    let w = sw === "auto" ? null : length(sw, bw);
    let h = sh === "auto" ? null : length(sh, bh);
    if (w === null && h === null) [w, h] = [nw, nh];
    else if (w === null) w = (h * nw) / nh;
    else if (h === null) h = (w * nh) / nw;
    return [w, h];
  }

  /** The PNG, or null when the canvas is tainted by a cross-origin picture. A light icon (white on a coloured
   * button) would vanish on the white the service puts under transparency: it is drawn on the page's background. */
  function iconPng(canvas, el) {
    try {
      const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
      let light = 0;
      let ink = 0;
      for (let i = 0; i < data.length; i += 4) {
        light += data[i + 3] * (0.2126 * data[i] + 0.7152 * data[i + 1] + 0.0722 * data[i + 2]);
        ink += data[i + 3];
      }
      const drawn = canvas;
      const shown = ink && light / ink > 200 ? onCanvas(drawn.width, drawn.height, (ctx) => {
        ctx.fillStyle = backdrop(el);
        ctx.fillRect(0, 0, drawn.width, drawn.height);
        ctx.drawImage(drawn, 0, 0);
      }) : drawn;
      return shown.toDataURL("image/png");
    } catch {
      return null;
    }
  }

  /** The colour the page shows behind `el`: the first background colour up its ancestors, if dark; else dark grey. */
  function backdrop(el) {
    for (let e = el; e && e.nodeType === 1; e = e.parentElement || (e.getRootNode() && e.getRootNode().host)) {
      const colour = getComputedStyle(e).backgroundColor;
      const [r, g, b, a = 1] = (colour.match(/[\d.]+/g) || []).map(Number);
      if (a > 0.5) return 0.2126 * r + 0.7152 * g + 0.0722 * b < 160 ? colour : "#222";
    }
    return "#222";
  }

  // ---- writing and restoring names ------------------------------------------------------------------------

  const nameAttribute = (el) => written.get(el) ||
    (["img", "input"].includes(names.imageKind(el)) ? "alt" : "aria-label");

  function isOurs(el) {
    return el.hasAttribute(GENERATED) && el.getAttribute(nameAttribute(el)) === el.getAttribute(GENERATED);
  }

  /** Writes `text` as el's name (alt, or aria-label), keeping what it replaces for restore(). */
  function inject(el, text, attribute = nameAttribute(el)) {
    // Counted per picture, not per element: a slideshow that changes src legitimately needs a name per slide.
    const picture = pictures.get(el) || 0;
    const seen = writes.get(el);
    const count = seen && seen.picture === picture ? seen.count : 0;
    if (count >= MAX_WRITES) return;
    writes.set(el, { picture, count: count + 1 });
    const saved = originals.get(el) || {};
    const set = (attr, value) => {
      if (!(attr in saved)) saved[attr] = el.getAttribute(attr);
      if (value === null) el.removeAttribute(attr);
      else el.setAttribute(attr, value);
    };
    // Only suspicious or empty names get here; ARIA names would outrank the one we write, so they go.
    for (const attr of ["aria-labelledby", "aria-label"]) if (el.hasAttribute(attr)) set(attr, null);
    set(attribute, text);
    written.set(el, attribute);
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
    written.delete(el);
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
    const answer = await describeElement(el, writable(el));
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
    else if (message.type === "still-wanted") sendResponse(message.page === pageId());
    return false;
  });

  document.addEventListener("contextmenu", (e) => { contextTarget = e.composedPath()[0]; }, true);
  chrome.storage.onChanged.addListener((changes, area) => {
    if (area === "local" && SETTING_KEYS.some((k) => k in changes)) refresh();
  });
  refresh();
})();
