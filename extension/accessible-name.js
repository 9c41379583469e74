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
    if (closestComposed(parentOf(el), '[role="img" i]')) return null;
    if (tag === "img" && !isSvg) return "img";
    if (tag === "input" && (el.getAttribute("type") || "").toLowerCase() === "image") return "input";
    if (isSvg) {
      if (el.parentElement && el.parentElement.closest("svg")) return null; // nested svg: part of the outer one
      return role(el) === "img" || !isIconBesideText(el) ? "svg" : null;
    }
    return role(el) === "img" ? "role" : null;
  }

  /** An element's parent, across a shadow root's edge to its host: an icon web component (<iconify-icon>,
   * <sl-icon>) draws its svg in its shadow root, and the button or link it sits in is outside. */
  const parentOf = (e) => e.parentElement || (e.parentNode && e.parentNode.host) || null;

  /** The closest of `el` and its ancestors, across shadow roots (parentOf), that matches `selector`; null for none
   * (or no `el`). */
  function closestComposed(el, selector) {
    for (let e = el; e; e = parentOf(e)) if (e.nodeType === 1 && e.matches(selector)) return e;
    return null;
  }

  // An unlabelled svg inside a link or button that has its own text is an icon next to that text.
  function isIconBesideText(svg) {
    const control = closestComposed(svg, "a, button, label, summary, [role=button], [role=link]");
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
    if (closestComposed(el, '[aria-hidden="true" i]')) return true;
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

  // ---- icon-only controls --------------------------------------------------------------------------------

  const CONTROL_SELECTOR = 'button, a[href], input[type="image" i], [role~="button" i], [role~="link" i]';
  const MIN_ICON = 8; // px: a rendered icon smaller than this in either direction is left alone
  // Icon fonts put their glyphs in the Private Use Area (Font Awesome, Bootstrap Icons, Material Icons' codepoints).
  const PRIVATE_USE = /^[\p{Co}\s]+$/u;
  // Ligature icon fonts draw a word ("search", "more_vert") as one glyph.
  const LIGATURE_FONT = /material[ -]?(?:icons|symbols)|icon|symbol|glyph/i;

  /** "button", "link" or "input" (an image button); null for anything else. */
  function controlKind(el) {
    if (!el || el.nodeType !== 1) return null;
    const tag = el.localName;
    if (tag === "input") return (el.getAttribute("type") || "").toLowerCase() === "image" ? "input" : null;
    const r = role(el);
    if (r === "button" || r === "link") return r;
    if (tag === "button") return "button";
    if (tag === "a" && el.hasAttribute("href")) return "link";
    return null;
  }

  /** The first CSS string of a computed `content` ('"\f002" / ""' -> {text: "\uf002", alt: ""}), {url} for an
   * image, null for none. */
  function cssContent(value) {
    if (!value || value === "none" || value === "normal") return null;
    const url = /^url\(\s*(["']?)(.*?)\1\s*\)/.exec(value);
    if (url) return { url: url[2] };
    const strings = value.match(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g);
    if (!strings) return null;
    const unquote = (q) => q.slice(1, -1)
      .replace(/\\([0-9a-f]{1,6})\s?/gi, (_, hex) => String.fromCodePoint(parseInt(hex, 16)))
      .replace(/\\(.)/g, "$1");
    const alt = /\/\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*$/.exec(value);
    return { text: unquote(strings[0]), alt: alt ? unquote(alt[1]) : null };
  }

  /** True when `text` in `el` is drawn as one ligature glyph ("more_vert" in Material Symbols): a single
   * identifier-like word in an icon font, or one that takes far less room than its letters would. */
  function isLigature(el, text) {
    if (!/^[a-z][a-z0-9_]*$/i.test(text)) return false;
    const style = el.ownerDocument.defaultView.getComputedStyle(el);
    // The first family only: "Segoe UI Symbol" at the end of a font stack is a fallback, not the text's font.
    if (LIGATURE_FONT.test(style.fontFamily.split(",")[0])) return true;
    if (text.length < 4) return false;
    const range = el.ownerDocument.createRange();
    range.selectNodeContents(el);
    const width = range.getBoundingClientRect().width;
    return width > 0 && width <= 1.3 * parseFloat(style.fontSize);
  }

  const isRendered = (el) => (typeof el.checkVisibility === "function"
    ? el.checkVisibility({ visibilityProperty: true, checkVisibilityCSS: true }) : !isHidden(el));

  const hasArea = (el) => {
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0;
  };

  /**
   * What a control shows besides its own attributes, walking its content as the accessible name does (step 2F):
   * {text: true} at the first text or descendant name (which names it), else {icons: [...]}, each
   * {type, element, ...}: "svg", "img" (an <img>), "glyph" (an icon font's ::before/::after: pseudo, text),
   * "text-glyph" (the element's own text in an icon font: ligatures, private-use characters), "background"
   * and "content-image" (a CSS url() image: url).
   */
  function controlContent(control) {
    const view = control.ownerDocument.defaultView;
    const icons = [];
    const pseudo = (el) => {
      for (const which of ["::before", "::after"]) {
        const style = view.getComputedStyle(el, which);
        const content = cssContent(style.content);
        if (!content || style.display === "none") continue;
        if (content.url) icons.push({ type: "content-image", element: el, pseudo: which, url: content.url });
        else if (content.alt) return true; // content: "\f002" / "Search": the author's name for the glyph
        else if (PRIVATE_USE.test(content.text) && content.text.trim()) {
          icons.push({ type: "glyph", element: el, pseudo: which, text: content.text.trim() });
        } else if (collapse(content.text)) return true; // generated text is part of the name
      }
      return false;
    };
    const background = (el) => {
      const bg = /url\(\s*(["']?)(.+?)\1\s*\)/.exec(view.getComputedStyle(el).backgroundImage);
      if (bg && hasArea(el)) icons.push({ type: "background", element: el, url: bg[2] });
    };
    const visit = (el) => {
      if (el !== control) {
        if (!isRendered(el)) return false;
        if (!el.closest('[aria-hidden="true" i]') && (hasAria(el) || collapse(el.getAttribute("title")))) return true;
      }
      const tag = el.localName;
      if (tag === "img") {
        if (collapse(el.getAttribute("alt")) && !el.closest('[aria-hidden="true" i]')) return true;
        if (hasArea(el) || !el.complete) icons.push({ type: "img", element: el });
        return false;
      }
      if (tag === "svg") {
        const title = Array.from(el.children).find((c) => c.localName === "title");
        if (title && collapse(title.textContent)) return true;
        if (Array.from(el.querySelectorAll("text")).some((t) => collapse(t.textContent))) return true; // drawn words
        if (hasArea(el)) icons.push({ type: "svg", element: el });
        return false;
      }
      // Form fields, media and frames inside a control: something other than an icon, left to the author.
      if (["input", "select", "textarea", "video", "canvas", "iframe", "object", "embed"].includes(tag)) return true;
      if (pseudo(el)) return true;
      background(el);
      // An open shadow root draws the element (an icon web component's svg); its slots show the light children.
      for (const child of [...el.childNodes, ...(el.shadowRoot ? el.shadowRoot.childNodes : [])]) {
        if (child.nodeType === 3) {
          const text = collapse(child.data);
          if (!text) continue;
          if (PRIVATE_USE.test(text) || isLigature(el, text)) icons.push({ type: "text-glyph", element: el, text });
          else return true;
        } else if (child.nodeType === 1 && visit(child)) return true;
      }
      return false;
    };
    return visit(control) ? { text: true, icons: [] } : { text: false, icons };
  }

  /** The name the author gave a control itself (not from its content): ARIA, <label>, alt of an image button. */
  function ownControlName(el) {
    const byIds = labelledByText(el);
    if (byIds) return { name: byIds, source: "aria-labelledby" };
    const ours = collapse(el.getAttribute(GENERATED));
    const label = collapse(el.getAttribute("aria-label"));
    if (label && label !== ours) return { name: label, source: "aria-label" };
    const labels = Array.from(el.labels || []).map((l) => collapse(l.textContent)).filter(Boolean).join(" ");
    if (labels) return { name: labels, source: "label" };
    if (controlKind(el) === "input") {
      for (const attr of ["alt", "value"]) {
        const value = collapse(el.getAttribute(attr));
        if (value && !(attr === "alt" && value === ours)) return { name: value, source: attr };
      }
    }
    const title = collapse(el.getAttribute("title"));
    if (title) return { name: title, source: "title" };
    return { name: "", source: "" };
  }

  /**
   * What to do with a button, link or image button:
   *   describe   no name, and its only content is one icon (`icon`: see controlContent) worth naming
   *   named      it has a name of its own (`source` says where from), whatever the name says
   *   text       it shows text, or something inside it has a name: its content names it
   *   hidden     not rendered or aria-hidden       empty     nothing to name it from (no icon, or several)
   *   tiny       its icon is under 8 px            ignore    not a control
   * `generated` is true when the aria-label is the one this extension wrote (it is ignored as a name).
   */
  function classifyControl(el) {
    const kind = controlKind(el);
    if (!kind) return { state: "ignore" };
    const generated = el.hasAttribute(GENERATED) && collapse(el.getAttribute("aria-label")) ===
      collapse(el.getAttribute(GENERATED));
    const own = ownControlName(el);
    if (own.name) return { state: "named", name: own.name, source: own.source, generated };
    if (isHidden(el)) return { state: "hidden", generated };
    let icons;
    if (kind === "input") {
      icons = [{ type: "img", element: el }];
    } else {
      const content = controlContent(el);
      if (content.text) return { state: "text", generated };
      icons = content.icons;
    }
    if (icons.length !== 1) return { state: "empty", generated };
    const [icon] = icons;
    const box = icon.element.getBoundingClientRect();
    const loading = icon.element.localName === "img" && !icon.element.complete;
    if (!loading && (box.width < MIN_ICON || box.height < MIN_ICON)) return { state: "tiny", generated };
    return { state: "describe", icon, generated };
  }

  /** The control whose icon `el` (an image) is, when that control is unnamed and shows nothing else. */
  function iconOwner(el) {
    const control = controlKind(el) ? el : closestComposed(parentOf(el), CONTROL_SELECTOR);
    if (!control) return null;
    const verdict = classifyControl(control);
    return verdict.state === "describe" && verdict.icon.element === el ? control : null;
  }

  const MARKUP_MAX = 300; // characters the service takes in one markup name
  // Icon web components, whose attribute names the glyph they draw: <ion-icon name>, <iconify-icon icon>,
  // <sl-icon name>, <vaadin-icon icon>, <iron-icon icon>, <mat-icon svgIcon>.
  const ICON_ELEMENT = /^(?=[a-z][a-z0-9]*-)(?:[a-z][a-z0-9]*-)*icon(?:-[a-z0-9]+)*$/;
  const ICON_ELEMENT_ATTRIBUTES = ["icon", "name", "svgicon"];

  /** The glyph an icon web component's attribute names ("mdi:home"), "" for any other element. */
  function iconElementName(el) {
    if (!ICON_ELEMENT.test(el.localName)) return "";
    return ICON_ELEMENT_ATTRIBUTES.map((a) => collapse(el.getAttribute(a))).find(Boolean) || "";
  }

  /**
   * What the page's code calls a control's icon (`icon`: see controlContent), for the service to read (what each
   * name means is decided there, once: server/describe/markup.py): {class, ligature, symbol, file}, each where the
   * page gives one, or null. `class`: the classes of the icon and of its ancestors up to the control, the icon's
   * first (fa-solid fa-house, bi bi-cart, lucide lucide-menu); `ligature`: the word a ligature font draws;
   * `symbol`: an svg's <use href>, else a data-icon attribute or an icon web component's (ICON_ELEMENT) name;
   * `file`: an image's src as written, or a CSS image's URL. The audit collects the same
   * (tests/vectors/markup.json).
   */
  function iconMarkup(icon) {
    const markup = {};
    const classes = [];
    let dataIcon = "";
    for (let e = icon.element; e && e.nodeType === 1; e = parentOf(e)) {
      const value = collapse(e.getAttribute("class"));
      if (value) classes.push(value);
      dataIcon ||= collapse(e.getAttribute("data-icon")) || iconElementName(e);
      if (controlKind(e)) break;
    }
    let cls = "";
    for (const token of classes.join(" ").split(" ")) {
      if (cls.length + token.length + 1 > MARKUP_MAX) break;
      cls = cls ? `${cls} ${token}` : token;
    }
    if (cls) markup.class = cls;
    if (icon.type === "text-glyph" && icon.text.length <= MARKUP_MAX && /^[a-z][a-z0-9_]*$/i.test(icon.text)) {
      markup.ligature = icon.text;
    }
    const use = icon.type === "svg" && icon.element.querySelector("use");
    const href = use && collapse(use.getAttribute("href") ||
      use.getAttributeNS("http://www.w3.org/1999/xlink", "href"));
    if (href || dataIcon) markup.symbol = (href || dataIcon).slice(0, MARKUP_MAX);
    const file = ["img", "input"].includes(icon.element.localName) ? collapse(icon.element.getAttribute("src"))
      : icon.url || "";
    if (file && !/^data:/i.test(file)) {
      const bare = file.length > MARKUP_MAX ? file.split(/[?#]/)[0] : file;
      if (bare.length <= MARKUP_MAX) markup.file = bare;
    }
    return Object.keys(markup).length ? markup : null;
  }

  /** A name the service gave a control, fit to be one: short, and not a word that only says "an icon". */
  function isUsableControlName(name) {
    const text = collapse(name);
    if (!text || text.length > 60 || /[.!?]\s/.test(text)) return false;
    return text.toLowerCase().replace(/[\p{P}\p{S}_]+/gu, " ").split(" ")
      .some((w) => w && !PLACEHOLDER_WORDS.has(w) && !STOPWORDS.has(w) && !["button", "link"].includes(w));
  }

  return {
    SELECTOR, GENERATED, CONTROL_SELECTOR, isSuspiciousName, imageKind, accessibleName, isDecorative, isHidden,
    classify, controlKind, cssContent, classifyControl, iconOwner, iconMarkup, isUsableControlName,
  };
})();
