/* Which images need a description: the accessible name as axe-core computes it for its image rules (img-alt,
 * input-image-alt, role-img-alt, svg-img-alt), plus the decorative, hidden, tiny and suspicious-name checks.
 *
 * Pure DOM reading, no extension APIs. It is a classic script, not an ES module, because MV3 content scripts
 * declared in the manifest cannot be modules: the manifest loads it before content.js into the same isolated world,
 * where it defines globalThis.altTextNames (its only global). Node tests import it and read the same global.
 */
globalThis.altTextNames = (() => {
  "use strict";

  const SELECTOR = 'img, input[type="image" i], [role~="img" i], svg';
  const GENERATED = "data-alt-text"; // the text this extension wrote; see content.js

  // Words that say "there is an image" without saying what it shows, and bits of file names.
  const PLACEHOLDER_WORDS = new Set([
    "image", "images", "img", "photo", "photos", "photograph", "picture", "pictures", "pic", "pics", "graphic",
    "graphics", "logo", "spacer", "icon", "banner", "thumbnail", "thumb", "placeholder", "untitled", "alt", "alttext",
    "null", "undefined", "none", "blank", "empty", "default", "pixel", "transparent", "screenshot", "scan", "dsc",
    "dscn", "pxl", "jpg", "jpeg", "png", "gif", "webp", "avif", "svg", "bmp", "tif", "tiff", "heic", "ico", "file",
    "copy", "final", "edited", "small", "large", "medium",
  ]);
  // Words that carry no meaning of their own ("a logo", "of the").
  const STOPWORDS = new Set(["a", "an", "the", "of", "and", "or", "for", "with", "in", "on", "at", "to", "my", "our",
    "your", "this", "that"]);
  const IMAGE_FILE = /\.(?:jpe?g|png|gif|webp|avif|svg|bmp|tiff?|ico|heic)(?:\?\S*)?$/i;
  // Ideographic scripts say a lot in few characters: "猫" is a fine name.
  const IDEOGRAPHIC = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/u;

  const collapse = (s) => (s || "").replace(/\s+/g, " ").trim();

  /** True for names that do not describe anything: file names, placeholder words, stop words only. A short real
   * word or acronym ("Dog", "CEO", "UN logo") is a name: the cases are in tests/vectors/names.json. */
  function isSuspiciousName(name) {
    const text = collapse(name).toLowerCase();
    if (!text) return true;
    if (IMAGE_FILE.test(text) && !/\s/.test(text)) return true; // "IMG_1234.jpg", "hero-banner.png"
    if (IDEOGRAPHIC.test(text)) return false;
    return !text
      .replace(/\.(?:jpe?g|png|gif|webp|avif|svg|bmp|tiff?|ico|heic)\b/g, " ")
      .replace(/[\p{P}\p{S}_]+/gu, " ")
      .split(" ")
      .some(isWord);
  }

  /** A word that says something: two or more letters, or letters and digits together ("W3C", "3M", "F1", "MP3",
   * "4K", "H2O" are names). Digits alone ("1234") say nothing, and neither does a placeholder or a stop word with
   * a number on it ("img3", "photo 2", "DSC00042"). */
  function isWord(token) {
    const letters = token.replace(/\p{N}+/gu, "");
    if (!letters || PLACEHOLDER_WORDS.has(letters) || STOPWORDS.has(letters)) return false;
    return token.length >= 2;
  }

  function role(el) {
    return (el.getAttribute("role") || "").trim().toLowerCase().split(/\s+/)[0];
  }

  /** "img", "input", "svg" or "role" (another element with role=img); null when el is not an image to check. */
  function imageKind(el) {
    if (!el || el.nodeType !== 1) return null;
    const tag = el.localName;
    const isSvg = tag === "svg" && el.namespaceURI === "http://www.w3.org/2000/svg";
    // An image inside role=img is part of that image (its children are presentational).
    if (el.parentElement && el.parentElement.closest('[role="img" i]')) return null;
    if (tag === "img" && !isSvg) return "img";
    if (tag === "input" && (el.getAttribute("type") || "").toLowerCase() === "image") return "input";
    if (isSvg) {
      if (el.parentElement && el.parentElement.closest("svg")) return null; // nested svg: part of the outer one
      return role(el) === "img" || !isIconBesideText(el) ? "svg" : null;
    }
    return role(el) === "img" ? "role" : null;
  }

  // An unlabelled svg inside a link or button that has its own text is an icon next to that text.
  function isIconBesideText(svg) {
    const control = svg.closest("a, button, label, summary, [role=button], [role=link]");
    if (!control) return false;
    const text = collapse(control.textContent.replace(collapse(svg.textContent), ""));
    return text.length > 0 || hasAria(control);
  }

  function hasAria(el) {
    return !!(collapse(el.getAttribute("aria-label")) || labelledByText(el));
  }

  function labelledByText(el) {
    const ids = (el.getAttribute("aria-labelledby") || "").split(/\s+/).filter(Boolean);
    const doc = el.ownerDocument;
    return collapse(ids.map((id) => doc.getElementById(id)).filter(Boolean).map(textAlternative).join(" "));
  }

  // The text of an element referenced by aria-labelledby (accessible-name steps 2C-2F, simplified).
  function textAlternative(el) {
    const label = collapse(el.getAttribute("aria-label"));
    if (label) return label;
    if (el.localName === "img") return collapse(el.getAttribute("alt"));
    return collapse(el.textContent);
  }

  /** {name, source}: the accessible name and the attribute it came from ("" when there is none). */
  function accessibleName(el) {
    const byIds = labelledByText(el);
    if (byIds) return { name: byIds, source: "aria-labelledby" };
    const label = collapse(el.getAttribute("aria-label"));
    if (label) return { name: label, source: "aria-label" };
    const kind = imageKind(el);
    if (kind === "img" || kind === "input") {
      const alt = collapse(el.getAttribute("alt"));
      if (alt) return { name: alt, source: "alt" };
    }
    if (kind === "svg") {
      const title = Array.from(el.children).find((c) => c.localName === "title");
      if (title && collapse(title.textContent)) return { name: collapse(title.textContent), source: "title-element" };
    }
    const title = collapse(el.getAttribute("title"));
    if (title) return { name: title, source: "title" };
    return { name: "", source: "" };
  }

  /** alt="" on an img, or role presentation/none, without an ARIA name that would override them. */
  function isDecorative(el) {
    if (hasAria(el)) return false;
    const r = role(el);
    if (r === "presentation" || r === "none") return true;
    return el.localName === "img" && r !== "img" && el.hasAttribute("alt") && !collapse(el.getAttribute("alt"));
  }

  /** aria-hidden on it or an ancestor, display:none or visibility:hidden (own or inherited). */
  function isHidden(el) {
    if (el.closest('[aria-hidden="true" i]')) return true;
    if (typeof el.checkVisibility === "function") {
      return !el.checkVisibility({ visibilityProperty: true, checkVisibilityCSS: true });
    }
    const view = el.ownerDocument.defaultView;
    const style = view.getComputedStyle(el);
    if (style.visibility === "hidden" || style.visibility === "collapse") return true;
    for (let e = el; e; e = e.parentElement) {
      if (view.getComputedStyle(e).display === "none") return true;
    }
    return false;
  }

  /**
   * What to do with one element:
   *   describe   no name, or a suspicious one (then `name` holds it)
   *   named      a meaningful author name            decorative   alt="" or role presentation
   *   hidden     not rendered or aria-hidden         tiny         rendered under minSize px in either direction
   *   pending    an img with no box yet because it has not loaded (look again on `load`)
   *   generated  its name is the one this extension wrote            ignore   not an image
   */
  function classify(el, options) {
    const minSize = (options && options.minSize) || 16;
    const kind = imageKind(el);
    if (!kind) return { state: "ignore" };
    if (isDecorative(el)) return { state: "decorative" };
    if (isHidden(el)) return { state: "hidden" };
    const { name, source } = accessibleName(el);
    if (name && name === collapse(el.getAttribute(GENERATED))) return { state: "generated", name, source };
    if (name && !isSuspiciousName(name)) return { state: "named", name, source };
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height) {
      return kind === "img" && !el.complete ? { state: "pending" } : { state: "hidden" };
    }
    if (box.width < minSize || box.height < minSize) return { state: "tiny" };
    return { state: "describe", name, source, kind };
  }

  return { SELECTOR, GENERATED, isSuspiciousName, imageKind, accessibleName, isDecorative, isHidden, classify };
})();
