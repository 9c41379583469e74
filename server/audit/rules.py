"""Static-HTML rules of the site audit: which images on one page lack a usable text alternative, and which buttons
and links have no name at all (most often because their only content is an icon).

The WCAG 1.1.1 rules follow axe-core's semantics (image-alt, input-image-alt, area-alt, role-img-alt, svg-img-alt,
object-alt) so that a site owner who also runs axe sees the same verdicts, but they work on markup alone: no
browser, no CSS cascade, no network. So do axe's button-name (WCAG 4.1.2) and link-name (2.4.4, 4.1.2), widened as
ACT's rules 97a4e1 and c487ae are to elements with role=button or role=link; when such a control's only content is
an icon, the finding says which kind (``icon``), so that the suggestions can offer a name for it. On top of them
come heuristics axe does not have, for images that *do* have a name which is useless to a listener (a file name,
"image", a repeat of the caption next to it); those are reported at moderate or minor severity because a person
has to judge them.

Everything a finding needs (selector, snippet, absolute image URL) is computed here, from the page alone, so a
report can be written without keeping the parsed document around.
"""
from __future__ import annotations

import re
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import chain
from urllib.parse import urljoin

import soupsieve
from bs4 import BeautifulSoup, Comment, NavigableString, Tag

from server.describe.markup import MAX_CHARS as MARKUP_MAX_CHARS
from server.describe.markup import LIGATURE as MARKUP_LIGATURE
from server.describe.markup import SET_PREFIXES as MARKUP_SET_PREFIXES

from . import graphics
from .judge import NEEDS_REVIEW

WCAG_1_1_1 = "WCAG 2.2 SC 1.1.1 (A)"
WCAG_4_1_2 = "WCAG 2.2 SC 4.1.2 (A)"
WCAG_2_4_4 = "WCAG 2.2 SC 2.4.4 (A), SC 4.1.2 (A)"

SEVERITY = {
    # axe-core's impacts for its rules.
    "image-alt": "critical",
    "input-image-alt": "critical",
    "area-alt": "critical",
    "role-img-alt": "serious",
    "svg-img-alt": "serious",
    "object-alt": "serious",
    "button-name": "critical",
    "link-name": "serious",
    # The image has a name, but it tells a listener nothing.
    "alt-suspicious-filename": "moderate",
    "alt-placeholder": "moderate",
    "alt-stopwords-only": "moderate",
    # The name works, but it could serve the listener better.
    "alt-redundant-prefix": "minor",
    "alt-too-long": "minor",
    "alt-duplicate-different-images": "minor",
    "alt-duplicates-adjacent-text": "minor",
    # A canvas or role-less inline svg that screen readers skip (no name): informative or decorative, a person
    # says (ACT e88epe); never a WCAG failure by itself.
    "graphic-unnamed": NEEDS_REVIEW,
}
RULES = tuple(SEVERITY)
GRAPHIC_RULE = "graphic-unnamed"
CONTROL_RULES = ("button-name", "link-name")
WCAG = {**dict.fromkeys(RULES, WCAG_1_1_1), "button-name": WCAG_4_1_2, "link-name": WCAG_2_4_4}
# What an unnamed control's only content can be (Finding.icon), in the words a finding uses.
ICONS = {
    "img": "an image without alt",
    "img-decorative": 'an image marked as decorative (alt="", role="none" or aria-hidden)',
    "svg": "an inline SVG",
    "input-image": "an image button without alt",
    "icon-font": "an icon-font glyph",
    "icon-element": "an icon web component (<ion-icon>, <iconify-icon>, <sl-icon> ...)",
    "background-image": "a CSS background image",
}


@dataclass(frozen=True)
class RuleOptions:
    max_alt_length: int = 150
    tiny_px: int = 16  # width and height attributes both at most this: likely decorative
    repeat_threshold: int = 5  # the same image URL this many times on a page: likely an icon or ornament
    snippet_chars: int = 300
    max_elements: int = 100_000  # elements of one page that are checked; the rest of the page is not
    max_seconds: float = 10.0  # time for checking one page (after parsing); findings up to there are kept
    # Also say what the page says about every image with a file (PageCheck.images), for the image judgements
    # (server.audit.judge) that run where images are described: only with suggestions on.
    judge_images: bool = False
    nearby_chars: int = 1000  # ImageContext.nearby_text is cut here
    icon_px: int = 32  # an unnamed graphic at most this wide and high with text beside it is that text's icon


@dataclass(frozen=True)
class Finding:
    page_url: str
    rule: str
    wcag: str
    severity: str
    selector: str
    snippet: str
    image_url: str | None
    message: str
    current_alt: str | None
    decorative_candidate: bool = False
    # A button or link without a name whose only content is an icon: which kind (ICONS). Also on the finding of
    # that icon's own <img>, and on every image button's: what they need is a name for the control, not a caption.
    icon: str | None = None
    # ... and what the page's code calls that icon (icon_markup: its classes, a ligature, a sprite's id, its file):
    # the suggestion names the control by it where the vocabulary knows the name.
    markup: dict[str, str] | None = None


@dataclass(frozen=True)
class ImageContext:
    """What a page says about one image element, for the image judgements (:class:`judge.ImageMarkup`, plus where
    the image is): collected for every image with a file, failing or not, when ``RuleOptions.judge_images`` is on.
    Images that are probably decorative (tiny, spacer files, repeated: ``Finding.decorative_candidate``) and those
    not shown at all (``hidden``, ``display: none``) are left out.

    ``name``: its accessible name. ``decorative``: hidden from screen readers (alt="" without an ARIA name, role
    none or presentation, aria-hidden on it or an ancestor). ``control``: "button" or "link" when it sits in one (an
    image button is a button); ``control_named``: that control has a name without this image (a decorative image
    adds nothing to it; an image button: its own name). ``nearby_text``: what a screen reader reads right next to
    it (its link, its figure's caption, its neighbours), at most ``RuleOptions.nearby_chars`` characters."""
    page_url: str
    selector: str
    snippet: str
    image_url: str
    name: str | None
    decorative: bool
    control: str | None = None
    control_named: bool = False
    nearby_text: str = ""
    # "svg" or "canvas": a graphic whose pixels the crawl keeps (CrawlState.graphics) under image_url, its reference
    # (graphics.graphic_ref). Unnamed (rule graphic-unnamed; decorative, no name): its e88epe judgement is attached
    # to that finding. Named (an svg, or a canvas under --render): judged as a named image is (qt1vmo).
    graphic: str | None = None


# ---------------------------------------------------------------------------------------------------------------
# Attributes and text


def _attr(el: Tag, name: str) -> str | None:
    """An attribute as one string (documents parsed elsewhere may split multi-valued attributes into lists)."""
    value = el.get(name)
    if isinstance(value, list):
        return " ".join(value)
    return value


def _clean(text: str | None) -> str | None:
    """Whitespace collapsed, or None when nothing is left."""
    if not text:
        return None
    return " ".join(text.split()) or None


def _role(el: Tag) -> str:
    tokens = (_attr(el, "role") or "").lower().split()
    return tokens[0] if tokens else ""


def _in_svg(el: Tag) -> bool:
    return el.name == "svg" or el.find_parent("svg") is not None


_GLOBAL_ARIA = frozenset({
    "aria-atomic", "aria-busy", "aria-controls", "aria-current", "aria-describedby", "aria-details",
    "aria-dropeffect", "aria-flowto", "aria-grabbed", "aria-haspopup", "aria-invalid", "aria-keyshortcuts",
    "aria-label", "aria-labelledby", "aria-live", "aria-owns", "aria-relevant", "aria-roledescription",
})


# Concrete ARIA roles (axe-core's lib/standards/aria-roles.js plus the SVG graphics roles), and those among them
# that need an accessible name. An explicit role is the first token of the role attribute when it is one of these;
# abstract, unknown and DPUB (doc-*) roles count as no role, as in axe's getExplicitRole.
_NAME_REQUIRED_ROLES = frozenset({
    "alertdialog", "application", "button", "checkbox", "combobox", "dialog", "img", "link", "listbox", "menuitem",
    "menuitemcheckbox", "menuitemradio", "meter", "option", "progressbar", "radio", "searchbox", "slider",
    "spinbutton", "switch", "textbox", "toolbar", "treeitem",
})
_ROLES = _NAME_REQUIRED_ROLES | {
    "alert", "article", "banner", "blockquote", "caption", "cell", "code", "columnheader", "complementary",
    "contentinfo", "comment", "definition", "deletion", "directory", "document", "emphasis", "feed", "figure", "form",
    "grid", "gridcell", "group", "heading", "insertion", "list", "listitem", "log", "main", "marquee", "math", "menu",
    "menubar", "mark", "navigation", "none", "note", "paragraph", "presentation", "radiogroup", "region", "row",
    "rowgroup", "rowheader", "scrollbar", "search", "separator", "status", "strong", "subscript", "superscript",
    "suggestion", "tab", "table", "tablist", "tabpanel", "term", "text", "time", "timer", "tooltip", "tree",
    "treegrid", "graphics-document", "graphics-object", "graphics-symbol",
}
_DISABLEABLE = frozenset({"button", "input", "select", "textarea", "option", "optgroup", "fieldset"})


def _explicit_role(el: Tag) -> str | None:
    role = _role(el)
    return role if role in _ROLES else None


def _focusable(el: Tag) -> bool:
    """As axe's isFocusable, from markup: not disabled, and natively focusable or given any integer tabindex."""
    if el.name in _DISABLEABLE and el.has_attr("disabled"):
        return False
    if el.name == "input":
        return (_attr(el, "type") or "").strip().lower() != "hidden"
    if el.name in ("a", "area") and el.has_attr("href") or el.name in ("button", "select", "textarea", "summary"):
        return True
    return re.fullmatch(r"\s*[+-]?\d+.*", _attr(el, "tabindex") or "", re.S) is not None


def _role_takes_it_out(el: Tag) -> bool:
    """axe's no-explicit-name-required-matches: an explicit role that needs no name (separator, gridcell...) on an
    element that cannot take focus makes it something other than an image, so the image rules do not apply."""
    role = _explicit_role(el)
    if role is None or role in ("none", "presentation"):
        return False
    return role not in _NAME_REQUIRED_ROLES and not _focusable(el)


def _is_presentational(el: Tag) -> bool:
    """role=none/presentation that browsers honour: not when focusable or carrying global ARIA (role conflict)."""
    if _role(el) not in ("none", "presentation"):
        return False
    return not _focusable(el) and not any(el.has_attr(a) for a in _GLOBAL_ARIA)


_STYLE_HIDDEN = re.compile(r"(?:^|;)\s*(?:display\s*:\s*none|visibility\s*:\s*hidden)\s*(?:!important\s*)?(?:;|$)",
                           re.I)


def _inerts(node: Tag) -> bool:
    return node.name in ("template", "noscript")


def _hides(node: Tag) -> bool:
    if (_attr(node, "aria-hidden") or "").strip().lower() == "true" or node.has_attr("hidden"):
        return True
    return _STYLE_HIDDEN.search(_attr(node, "style") or "") is not None


def _up_any(el: Tag, test, memo: dict | None = None) -> bool:
    """Whether ``test`` holds for the element or an ancestor; ``memo`` remembers the answer of every element on the
    way, so that checking each of many nested elements costs one walk up in all."""
    memo = {} if memo is None else memo
    way, found, node = [], False, el
    while node is not None and not isinstance(node, BeautifulSoup):
        if id(node) in memo:
            found = memo[id(node)]
            break
        way.append(node)
        if test(node):
            found = True
            break
        node = node.parent
    for node in way:
        memo[id(node)] = found
    return found


def _is_inert(el: Tag, memo: dict | None = None) -> bool:
    """Inside <template> (never rendered) or <noscript> (rendered only when scripts are off)."""
    return el.parent is not None and _up_any(el.parent, _inerts, memo)


def _is_hidden(el: Tag, memo: dict | None = None) -> bool:
    """Hidden from assistive technology by the element or an ancestor, as far as markup alone can tell."""
    return _up_any(el, _hides, memo)


# Elements whose text is never on screen: metadata, scripts, SVG titles and descriptions (tooltips at most).
_UNRENDERED = frozenset({"head", "title", "script", "style", "template", "noscript", "desc", "metadata", "iframe",
                         "textarea", "select", "datalist"})


def _not_shown(el: Tag) -> bool:
    """Not on screen: unrendered elements, hidden ones, a loaded object's fallback (it shows only on failure)."""
    if el.name in _UNRENDERED or el.has_attr("hidden") or _STYLE_HIDDEN.search(_attr(el, "style") or ""):
        return True
    return el.name == "object" and bool((_attr(el, "data") or "").strip())


def _renders_nothing(el: Tag) -> bool:
    """Neither on screen nor read: not shown, or hidden from assistive technology (aria-hidden icons still show)."""
    return _not_shown(el) or (_attr(el, "aria-hidden") or "").strip().lower() == "true"


def rendered_text(node, limit: int | None = None) -> str:
    """The text a page shows (and a screen reader reads) inside ``node``: not SVG <title>/<desc>, scripts,
    templates, hidden elements or a loaded object's fallback. Iterative, so deeply nested markup cannot overflow.
    With ``limit``, it stops once it has that many characters (and may return a few more)."""
    if isinstance(node, NavigableString):
        return "" if isinstance(node, Comment) else str(node)
    parts: list[str] = []
    stack, size = [node], 0
    while stack:
        current = stack.pop()
        if isinstance(current, Tag):
            if _renders_nothing(current):
                continue
            stack.extend(reversed(current.contents))
        elif isinstance(current, NavigableString) and type(current) is NavigableString:
            parts.append(str(current))
            size += len(parts[-1])
            if limit is not None and size >= limit:
                break
    return " ".join(parts)


def _node_text(node: Tag) -> str | None:
    """The text an aria-labelledby reference contributes."""
    own = _clean(_attr(node, "aria-label"))
    if own:
        return own
    if node.name == "img" and _clean(_attr(node, "alt")):
        return _clean(_attr(node, "alt"))
    return _clean(node.get_text(" "))


class _Doc:
    """A parsed page with the look-ups the rules make many times: element by id, labels by for=, id counts (built
    once, on first use, so that a page of 50,000 images costs one pass, not one pass per image)."""

    def __init__(self, root: Tag, elements: list[Tag] | None = None):
        self.root = root
        self._elements = elements
        self._ids: dict[str, Tag] | None = None
        self._labels: dict[str, list[Tag]] = defaultdict(list)
        self.id_counts: Counter = Counter()
        # Per element (by id()), what its content gives a control: a name (True/False), its first icon (or None).
        # Controls nest; remembering keeps a page of nested controls linear (see _walk_content).
        self.content_named: dict[int, bool] = {}
        self.content_icon: dict[int, tuple | None] = {}

    def _index(self) -> None:
        self._ids = {}
        for el in self._elements if self._elements is not None else self.root.find_all(True):
            el_id = _attr(el, "id")
            if el_id:
                self._ids.setdefault(el_id, el)
                self.id_counts[el_id] += 1
            if el.name == "label" and _attr(el, "for"):
                self._labels[_attr(el, "for")].append(el)

    def by_id(self, el_id: str) -> Tag | None:
        if self._ids is None:
            self._index()
        return self._ids.get(el_id)

    def labels_for(self, el_id: str) -> list[Tag]:
        if self._ids is None:
            self._index()
        return self._labels.get(el_id, [])

    def counts(self) -> Counter:
        if self._ids is None:
            self._index()
        return self.id_counts


def _labelledby_text(el: Tag, doc: _Doc) -> str | None:
    ids = (_attr(el, "aria-labelledby") or "").split()
    targets = (doc.by_id(i) for i in ids)
    return _clean(" ".join(filter(None, (_node_text(t) for t in targets if t is not None))))


def _aria_name(el: Tag, doc: _Doc) -> str | None:
    return _labelledby_text(el, doc) or _clean(_attr(el, "aria-label"))


def _label_text(el: Tag, doc: _Doc) -> str | None:
    """The text of the <label>s of a form control: an ancestor label, and labels whose for= is its id."""
    labels = [el.find_parent("label")]
    el_id = _attr(el, "id")
    if el_id:
        labels += doc.labels_for(el_id)
    return _clean(" ".join(filter(None, (rendered_text(label) for label in labels if label is not None))))


def _svg_title(el: Tag) -> str | None:
    title = el.find("title", recursive=False)
    return _clean(title.get_text(" ")) if title is not None else None


def _native_names(el: Tag, doc: _Doc) -> tuple[str | None, ...]:
    title = _clean(_attr(el, "title"))
    if el.name == "input":
        return _clean(_attr(el, "alt")), _label_text(el, doc), title
    if el.name in ("img", "area"):
        return _clean(_attr(el, "alt")), title
    if _in_svg(el):
        return _svg_title(el), title
    return (title,)  # an <object>'s fallback content is not its name: it shows only when the object fails to load


def accessible_name(el: Tag, soup: Tag | _Doc) -> str | None:
    """The element's text alternative: aria-labelledby, aria-label, then what its element type offers.

    aria-labelledby counts only ids that exist and have text; native sources are alt (img, area, input), the
    labels of an image button, a <title> child (svg) and the title attribute (an object's fallback content is not
    one, as in axe). When none gives text, the raw alt attribute is returned if present ("" marks an image as
    decorative, " " is a mistake), else None.
    """
    doc = soup if isinstance(soup, _Doc) else _Doc(soup)
    for name in (_aria_name(el, doc), *_native_names(el, doc)):
        if name:
            return name
    return _attr(el, "alt") if el.name in ("img", "area", "input") else None


# ---------------------------------------------------------------------------------------------------------------
# The WCAG 1.1.1 rules (axe-core semantics)


def _rule_for(el: Tag) -> str | None:
    """Which axe rule applies to the element, if any."""
    role = _role(el)
    if el.name in ("img", "input", "object") and _role_takes_it_out(el):
        return None
    if el.name == "img":
        return "image-alt"
    if el.name == "input":
        return "input-image-alt" if (_attr(el, "type") or "").strip().lower() == "image" else None
    if el.name == "area":
        return "area-alt" if el.has_attr("href") and el.find_parent("map") is not None else None
    if el.name == "object":
        return "object-alt" if (_attr(el, "data") or "").strip() else None  # without data only fallback shows
    if _in_svg(el):
        if role in ("img", "graphics-symbol") or (el.name == "svg" and role == "graphics-document"):
            return "svg-img-alt"
        return None
    return "role-img-alt" if role == "img" else None


def _passes(rule: str, el: Tag, doc: _Doc) -> bool:
    named = _aria_name(el, doc) is not None or _clean(_attr(el, "title")) is not None
    if rule == "image-alt":
        alt = _attr(el, "alt")
        if alt and not alt.strip():  # axe's alt-space-value: fails whatever else is there
            return False
        return alt is not None or named or _is_presentational(el)
    if rule == "input-image-alt":
        return named or _clean(_attr(el, "alt")) is not None or _label_text(el, doc) is not None
    if rule == "area-alt":
        return named or _clean(_attr(el, "alt")) is not None
    if rule == "svg-img-alt":
        return named or _svg_title(el) is not None
    if rule == "object-alt":  # fallback content is not its name (axe #2525), unless it is all that shows
        return named or _is_presentational(el) or _judged_by_fallback(el, doc)
    return named  # role-img-alt


_MEDIA_FILE = re.compile(r"\.(?:jpe?g|png|gif|webp|avif|svg|bmp|tiff?|heic|ico|mp3|m4a|aac|flac|ogg|oga|opus|wav"
                         r"|mp4|m4v|mov|webm|ogv|mkv|avi|mpe?g)$", re.I)


def _embeds_media(el: Tag) -> bool:
    """Whether an object's data is an image, audio or video, by a data: URL's own type, else the type attribute,
    else the file extension."""
    data = (_attr(el, "data") or "").strip()
    declared = (_attr(el, "type") or "").strip()
    if data[:5].lower() == "data:":
        declared = data[5:].split(",", 1)[0].split(";", 1)[0].strip() or declared
    if declared:
        return declared.split("/", 1)[0].strip().lower() in ("image", "audio", "video")
    return bool(_MEDIA_FILE.search(_file_name(data)))


def _judged_by_fallback(el: Tag, doc: _Doc) -> bool:
    """An object whose data is no image, audio or video (an HTML page, an unknown type) and whose fallback holds an
    image with a name of its own. Without loading the data the audit cannot tell whether it loads; when it does
    not, the fallback is what shows and is read, and axe skips the object (ACT 8fc3b6, inapplicable example 8).
    The fallback's images are checked by their own rules. An object that embeds media, or whose fallback is only
    text (axe's object-alt violation3), is still checked for a name of its own."""
    if _embeds_media(el):
        return False
    return any(_rule_for(d) is not None and not _is_hidden(d) and (accessible_name(d, doc) or "").strip()
               for d in el.find_all(True))


_SUBJECT = {
    "image-alt": "Image",
    "input-image-alt": "Image button",
    "area-alt": "Image-map link",
    "role-img-alt": 'Element with role="img"',
    "svg-img-alt": "SVG image",
    "object-alt": "Embedded object",
}
_FIX = {
    "image-alt": 'add an alt attribute that describes it, or alt="" if it is purely decorative',
    "input-image-alt": "add an alt attribute that says what the button does",
    "area-alt": "add an alt attribute that says where the link goes",
    "role-img-alt": 'add an aria-label that describes it, or remove role="img" and hide it with aria-hidden="true"'
                    " if it is decorative",
    "svg-img-alt": 'add a <title> child or an aria-label that describes it, or aria-hidden="true" if it is decorative',
    "object-alt": "add an aria-label or a title that says what it is (fallback content inside the element is shown"
                  " only when it fails to load, so it does not name it)",
}
_DECORATIVE_FIX = {
    "image-alt": 'it looks decorative, so add alt="" (or an alt that describes it if it carries meaning)',
    "svg-img-alt": 'it looks decorative, so add aria-hidden="true" (or a <title> that describes it if it carries'
                   " meaning)",
}


def _failure_message(rule: str, el: Tag, decorative: bool, icon: str | None = None) -> str:
    alt = _attr(el, "alt")
    if rule == "image-alt" and alt and not alt.strip():
        why = " (its alt contains only spaces, which screen readers may replace with the file name)"
    elif rule == "input-image-alt" and alt == "":
        why = ' (alt="" is for decorative images, but a button must say what it does)'
    elif el.has_attr("aria-labelledby"):
        why = " (aria-labelledby points to elements that are missing or empty)"
    else:
        why = ""
    fix = _DECORATIVE_FIX.get(rule, _FIX[rule]) if decorative else _FIX[rule]
    if rule == "image-alt" and icon:
        fix = "it is the only content of a button or link, so add an alt that says what the control does"
    return f"{_SUBJECT[rule]} has no text alternative{why}: {fix}."


# ---------------------------------------------------------------------------------------------------------------
# Buttons and links without a name (axe-core's button-name and link-name)


def _control_rule(el: Tag) -> str | None:
    """button-name for a <button> or role=button, link-name for an <a href> or role=link. A native control with
    another explicit role stays in its rule when that role needs a name or the control can take focus (axe's
    no-explicit-name-required-matches: browsers ignore role=presentation on a focusable button). Images, image
    buttons and objects with a control role are left to the image rules."""
    if el.name == "button" or el.name == "a" and el.has_attr("href"):
        role = _explicit_role(el)
        if role in (None, "none", "presentation") or role in _NAME_REQUIRED_ROLES or _focusable(el):
            return "button-name" if el.name == "button" else "link-name"
        return None
    if el.name in ("img", "input", "area", "object"):
        return None
    return {"button": "button-name", "link": "link-name"}.get(_explicit_role(el) or "")


_INPUT_DEFAULT_NAME = {"submit": "Submit", "reset": "Reset"}


def _own_name(el: Tag, doc: _Doc) -> str | None:
    """What an element inside a control adds to the control's name besides its text: its ARIA name, an image's
    alt, an SVG's <title>, a form control's value, else its title attribute (accname, as axe's subtreeText)."""
    name = _aria_name(el, doc)
    if name is None and el.name in ("img", "area"):
        name = _clean(_attr(el, "alt"))
    elif name is None and el.name == "input":
        kind = (_attr(el, "type") or "").strip().lower()
        name = _clean(_attr(el, "alt")) if kind == "image" else (_clean(_attr(el, "value"))
                                                                  or _INPUT_DEFAULT_NAME.get(kind))
    elif name is None and el.name == "svg":
        name = _svg_title(el)
    return name or _clean(_attr(el, "title"))


def _walk_content(el: Tag, memo: dict, skip, hit, budget: _Budget):
    """The first ``hit(node)`` (not None) in el's content in document order, not looking into ``skip``ped elements,
    or None. ``memo`` keeps each element's answer for its own content: the elements a fruitless walk went through
    have none, and the answer found is also the answer of every element between it and el."""
    if id(el) in memo:
        return memo[id(el)]
    through = [el]
    stack = list(reversed(el.contents))
    while stack:
        node = stack.pop()
        budget.tick()
        if isinstance(node, Tag) and skip(node):
            continue
        found, up = hit(node), node.parent
        if found is None and isinstance(node, Tag):
            known = memo.get(id(node), False)  # False: not known; None: nothing in its content
            if known is False:
                through.append(node)
                stack.extend(reversed(node.contents))
                continue
            found, up = known, node
        if found is not None:
            while up is not None:
                memo[id(up)] = found
                if up is el:
                    break
                up = up.parent
            return found
    for node in through:
        memo[id(node)] = None
    return None


def _named_by_content(el: Tag, doc: _Doc, budget: _Budget) -> bool:
    """Whether the control's content gives it a name (accname's name from content): its text or what an element
    inside adds (_own_name). Content hidden from assistive technology adds nothing. Stops at the first word."""
    def skip(node: Tag) -> bool:
        return _renders_nothing(node) or node.name == "input" and (_attr(node, "type") or "").lower() == "hidden"

    def hit(node) -> bool | None:
        if isinstance(node, Tag):
            return True if _own_name(node, doc) else None
        return True if type(node) is NavigableString and node.strip() else None

    return _walk_content(el, doc.content_named, skip, hit, budget) is not None


def _control_passes(rule: str, el: Tag, doc: _Doc, budget: _Budget) -> bool:
    """axe's checks: an ARIA name or a title, a <label> (a button is labelable), a name from its content, or (a
    button only) a presentational role that browsers honour (disabled, so it cannot take focus)."""
    if _aria_name(el, doc) or _clean(_attr(el, "title")) or el.name == "svg" and _svg_title(el):
        return True
    if el.name == "button" and _label_text(el, doc):
        return True
    if rule == "button-name" and _is_presentational(el):
        return True
    return _named_by_content(el, doc, budget)


# Class names of icon fonts: every icon set's prefix the markup names are read by (server.describe.markup: Font
# Awesome, Bootstrap Icons, Material Design Icons, Glyphicons, Ionicons, Octicons, Dashicons, Codicons ...), alone
# or before a glyph's name, Material Icons/Symbols, and generic ones ("icon", "icon-search", "search-icon").
_ICON_FONT_CLASS = re.compile(
    "|".join(f"{re.escape(p)}(?:-.+)?" for p in sorted(MARKUP_SET_PREFIXES, key=len, reverse=True))
    + r"|glyphicon.*|material-(?:icons|symbols).*|icons?|icon-.+|.+-icon|ionicons?|octicon.*|dashicons.*|codicon.*",
    re.I)


# Icon web components, whose attribute names the glyph they draw in their shadow root: <ion-icon name>,
# <iconify-icon icon>, <sl-icon name>, <vaadin-icon icon>, <iron-icon icon>, <mat-icon svgIcon> (the extension's
# ICON_ELEMENT; tests/vectors/markup.json).
_ICON_ELEMENT = re.compile(r"(?=[a-z][a-z0-9]*-)(?:[a-z][a-z0-9]*-)*icon(?:-[a-z0-9]+)*")
_ICON_ELEMENT_ATTRIBUTES = ("icon", "name", "svgicon")


def _icon_element_name(node: Tag) -> str:
    """The glyph an icon web component's attribute names ("mdi:home"), "" for any other element."""
    if not _ICON_ELEMENT.fullmatch(node.name):
        return ""
    return next((v for a in _ICON_ELEMENT_ATTRIBUTES if (v := _clean(_attr(node, a)))), "")


def _icon_itself(node) -> tuple[str, Tag, str | None] | None:
    """(ICONS key, the element, the raw URL of its pixels or None) when the node is an icon."""
    if not isinstance(node, Tag):
        return None
    if node.name == "img":
        decorative = (_attr(node, "alt") == "" or _role(node) in ("none", "presentation")
                      or (_attr(node, "aria-hidden") or "").strip().lower() == "true")
        return ("img-decorative" if decorative else "img"), node, _raw_image_ref(node)
    if node.name == "input" and (_attr(node, "type") or "").strip().lower() == "image":
        return "input-image", node, _raw_image_ref(node)
    if node.name == "svg":
        return "svg", node, None
    if _ICON_ELEMENT.fullmatch(node.name):
        return "icon-element", node, None
    if any(_ICON_FONT_CLASS.fullmatch(c) for c in (_attr(node, "class") or "").split()):
        return "icon-font", node, None
    background = _clean(background_image_url(_attr(node, "style") or ""))
    return ("background-image", node, background) if background else None


def _icon(el: Tag, doc: _Doc, budget: _Budget) -> tuple[str, Tag, str | None] | None:
    """What an unnamed control shows instead of a name: its own background image, else the first icon in it (an
    svg is not looked into). Icons hidden with aria-hidden still show."""
    own = _clean(background_image_url(_attr(el, "style") or ""))
    if own:
        return "background-image", el, own
    return _walk_content(el, doc.content_icon, _not_shown, _icon_itself, budget)


def icon_markup(kind: str, icon: Tag, ref: str | None = None) -> dict[str, str] | None:
    """What the page's code calls a control's icon (``kind``, ``icon`` and ``ref`` as :func:`_icon` found them), as
    the extension's ``iconMarkup`` collects it (tests/vectors/markup.json; what the names mean is
    :mod:`server.describe.markup`'s to say): ``class``, the classes of the icon and of its ancestors up to the
    control, the icon's first; ``ligature``, the word an icon font's element draws; ``symbol``, an svg's
    ``<use href>``, else a data-icon attribute or an icon web component's name; ``file``, an image's src as
    written, or its CSS image's URL."""
    if kind == "icon-font":  # a wrapper ("icon", "btn-icon") around the glyph or svg that is the icon itself
        inner = next((found for d in icon.find_all(True) if (found := _icon_itself(d))), None)
        if inner is not None:
            kind, icon, ref = inner
    markup: dict[str, str] = {}
    classes, data_icon = [], ""
    for node in (icon, *icon.parents):
        if not isinstance(node, Tag) or node.name == "[document]":
            break
        classes.append(_clean(_attr(node, "class")) or "")
        data_icon = data_icon or _clean(_attr(node, "data-icon")) or _icon_element_name(node)
        if _control_rule(node) is not None or node.name == "input":
            break  # the control (or the image button, or a control whose own background is the icon): the last
    tokens = " ".join(c for c in classes if c).split()
    cls = ""
    for token in tokens:
        if len(cls) + len(token) + 1 > MARKUP_MAX_CHARS:
            break
        cls = f"{cls} {token}" if cls else token
    if cls:
        markup["class"] = cls
    own_text = _clean(" ".join(t for t in icon.find_all(string=True, recursive=False)))
    if kind == "icon-font" and own_text and len(own_text) <= MARKUP_MAX_CHARS and MARKUP_LIGATURE.fullmatch(own_text):
        markup["ligature"] = own_text
    use = icon.find("use") if kind == "svg" else None
    href = _clean(_attr(use, "href") or _attr(use, "xlink:href")) if use is not None else None
    if href or data_icon:
        markup["symbol"] = (href or data_icon)[:MARKUP_MAX_CHARS]
    file = _clean(_attr(icon, "src")) if icon.name in ("img", "input") else ref
    if file and not file.lower().startswith("data:"):
        bare = re.split(r"[?#]", file)[0] if len(file) > MARKUP_MAX_CHARS else file
        if len(bare) <= MARKUP_MAX_CHARS:
            markup["file"] = bare
    return markup or None


def _control_message(rule: str, el: Tag, icon: str | None) -> str:
    what, purpose, example = ("Button", "what it does", "Search") if rule == "button-name" else \
        ("Link", "where it goes", "Home")
    if icon in ("img", "img-decorative"):
        return (f"{what} has no accessible name: its only content is an icon ({ICONS[icon]}). Give the image an alt "
                f'that says {purpose} (e.g. alt="{example}"), or give the {what.lower()} an aria-label that does.')
    if icon is not None:
        return (f"{what} has no accessible name: its only content is an icon ({ICONS[icon]}). Give the "
                f'{what.lower()} an aria-label that says {purpose}, e.g. aria-label="{example}".')
    role = _role(el)
    if el.has_attr("aria-labelledby"):
        why = " (aria-labelledby points to elements that are missing or empty)"
    elif role in ("none", "presentation"):
        why = f' (role="{role}" does not hide it: browsers ignore that role on an element that can take focus)'
    elif el.name == "button" and _clean(_attr(el, "value")):
        why = " (a button's value attribute is not its name)"
    elif el.has_attr("aria-label"):
        why = " (its aria-label is empty)"
    else:
        why = ""
    return (f'{what} has no accessible name, so screen readers can only call it "{what.lower()}"{why}: give it '
            f"text, an aria-label or a title that says {purpose}.")


# ---------------------------------------------------------------------------------------------------------------
# Graphics that screen readers skip: a canvas or a role-less inline svg without a name (ACT e88epe)

# Roles whose children are presentational (WAI-ARIA 1.2, "Children Presentational: True"): a graphic inside one is
# part of that element, not a node of its own.
_PRESENTATIONAL_CHILDREN = frozenset({"button", "checkbox", "img", "meter", "menuitemcheckbox", "menuitemradio",
                                      "option", "progressbar", "radio", "scrollbar", "separator", "slider", "switch",
                                      "tab"})


def _graphic_element(el: Tag) -> bool:
    """A <canvas> with no explicit role, or an outermost <svg> with no explicit role (semantic role
    graphics-document, by SVG-AAM and ARIA in HTML). Those with a role are the image rules' (role-img-alt,
    svg-img-alt) or something else; an svg inside another is part of it."""
    if el.name not in ("svg", "canvas") or _explicit_role(el) is not None:
        return False
    return el.name == "canvas" or el.find_parent("svg") is None


def _graphic_name(el: Tag, doc: _Doc) -> str | None:
    """The graphic's accessible name: aria-labelledby, aria-label, then (svg, SVG-AAM) a <title> child, then the
    title attribute (HTML-AAM for canvas; axe counts it on svg too). Neither element is named from its content
    (accname 1.2 step 2F applies to roles that allow it, and graphics-document and canvas's generic mapping do
    not)."""
    return _aria_name(el, doc) or (_svg_title(el) if el.name == "svg" else None) or _clean(_attr(el, "title"))


def _svg_parts_speak(el: Tag, doc: _Doc) -> bool:
    """An svg whose parts are named (a <title> inside, a graphics-symbol with an aria-label or a title, as axe's
    svg-img-alt passes 6-10), or are images of their own (role img or graphics-symbol: svg-img-alt checks those,
    as its violation 10): what it shows reaches screen readers through them, or their own rule says it does not."""
    for node in el.find_all(True):
        if node.name == "title" and _clean(node.get_text(" ")):
            return True
        if _role(node) in ("img", "graphics-symbol", "graphics-document"):
            return True
        if _aria_name(node, doc) or _clean(_attr(node, "title")):
            return True
    return False


def _graphic_out_of_scope(el: Tag, doc: _Doc) -> bool:
    """ACT e88epe's exception and the controls: an ancestor named from author (aria-label, aria-labelledby; e.g. a
    link with an aria-label around an svg star), an ancestor whose children are presentational (role img, button,
    ...), or a button or link around it. A control with a name makes its graphic decorative by context; one
    without is what button-name / link-name report (with the graphic as its icon), once."""
    for node in el.parents:
        if isinstance(node, BeautifulSoup):
            return False
        if _control_rule(node) is not None or _role(node) in _PRESENTATIONAL_CHILDREN:
            return True
        if node.has_attr("aria-label") or node.has_attr("aria-labelledby"):
            if _aria_name(node, doc):
                return True
    return False


def _beside_text(el: Tag) -> bool:
    """Rendered text right before or after the element (its siblings)."""
    for node in (_neighbour(el.previous_sibling, False), _neighbour(el.next_sibling, True)):
        if node is not None and rendered_text(node, 40).strip():
            return True
    return False


@dataclass
class _GraphicsPage:
    """What the graphic rule needs to know of the whole page, computed once on first use."""
    elements: list[Tag]
    _scripted: bool | None = None
    _counts: Counter | None = None
    _all_counts: Counter | None = None

    def scripted(self) -> bool:
        """Whether anything can draw on a canvas: a <script>, or an on* handler attribute."""
        if self._scripted is None:
            self._scripted = any(el.name == "script" or any(a.startswith("on") for a in el.attrs)
                                 for el in self.elements)
        return self._scripted

    def repeats(self, el: Tag) -> int:
        """How many graphics of the page have exactly this markup (an icon repeated down a list)."""
        if self._counts is None:
            self._counts = Counter(str(g) for g in self.elements if g.name in ("svg", "canvas")
                                   and _graphic_element(g))
        return self._counts[str(el)]

    def repeats_any(self, el: Tag) -> int:
        """How many canvases and outermost svgs of the page, with a role or not, have exactly this markup."""
        if self._all_counts is None:
            self._all_counts = Counter(str(g) for g in self.elements if g.name == "canvas" or (
                g.name == "svg" and g.find_parent("svg") is None))
        return self._all_counts[str(el)]


def _graphic_fires(el: Tag, doc: _Doc, options: RuleOptions, page: _GraphicsPage, budget: _Budget) -> bool:
    """Rule graphic-unnamed: a canvas or role-less svg that is in the accessibility tree (not hidden, not inert:
    the candidates' own checks) and has an empty accessible name, so that assistive technologies ignore it (ACT
    e88epe's "ignored svg" and "ignored canvas"), and that is big enough and drawn enough to carry information:

    * named: aria-labelledby, aria-label, an svg's <title> child, a title attribute (:func:`_graphic_name`);
    * a canvas's fallback content is exposed to assistive technology in its place (HTML, the canvas element):
      fallback text, or an element in it with a name of its own, is what a listener gets, so it is not ignored;
    * a canvas on a page with no script shows nothing (ACT e88epe inapplicable example 6: transparent);
    * an svg that draws nothing (a sprite sheet of <symbol>s) or whose parts are named is left alone;
    * out of scope: inside a button or link, under an ancestor named from author or with presentational children
      (:func:`_graphic_out_of_scope`);
    * probably decorative: width and height at most ``tiny_px``; the same markup ``repeat_threshold`` times on the
      page; at most ``icon_px`` wide and high with text right beside it (an icon before a label)."""
    budget.tick()
    if _graphic_name(el, doc):
        return False
    if el.name == "canvas":
        if not page.scripted() or _named_by_content(el, doc, budget):
            return False
    elif not graphics.draws_something(el) or _svg_parts_speak(el, doc):
        return False
    width, height = _pixels(_attr(el, "width")), _pixels(_attr(el, "height"))
    sized = width is not None and height is not None
    if sized and width <= options.tiny_px and height <= options.tiny_px:
        return False
    if _graphic_out_of_scope(el, doc):
        return False
    if sized and width <= options.icon_px and height <= options.icon_px and _beside_text(el):
        return False
    return page.repeats(el) < options.repeat_threshold


# The roles a named graphic may have to be judged as a named image is: none (a canvas; an svg's graphics-document),
# img, and an svg's graphics-document given explicitly.
_NAMED_GRAPHIC_ROLES = {"canvas": (None, "img"), "svg": (None, "img", "graphics-document")}


def _named_graphic(c: _Candidate, doc: _Doc, options: RuleOptions, page: _GraphicsPage) -> str | None:
    """The name of a canvas or outermost svg that has one and whose pixels are worth judging against it (ACT
    qt1vmo: a canvas named "HTML 5 logo" that shows another logo), else None. In the accessibility tree (the
    candidates' own checks), role none, img or (svg) graphics-document, and by the unnamed graphics' measures
    big and drawn enough: not tiny, not repeated down the page, not an icon beside text, an svg that paints
    something; not in a button or link (a control's graphic is named for what the control does) or under an
    ancestor named from author or with presentational children."""
    el = c.element
    if el.name not in _NAMED_GRAPHIC_ROLES or _explicit_role(el) not in _NAMED_GRAPHIC_ROLES[el.name] or \
            c.rule not in (GRAPHIC_RULE, "svg-img-alt", "role-img-alt") or not c.passed:
        return None
    if el.name == "svg" and el.find_parent("svg") is not None:
        return None
    name = _graphic_name(el, doc) if c.rule == GRAPHIC_RULE else c.name
    if not name or not name.strip():
        return None
    width, height = _pixels(_attr(el, "width")), _pixels(_attr(el, "height"))
    sized = width is not None and height is not None
    if sized and width <= options.tiny_px and height <= options.tiny_px:
        return None
    if el.name == "svg" and not graphics.draws_something(el):
        return None
    if _graphic_out_of_scope(el, doc):
        return None
    if sized and width <= options.icon_px and height <= options.icon_px and _beside_text(el):
        return None
    return name if page.repeats_any(el) < options.repeat_threshold else None


def _graphic_pixels(el: Tag, doc: _Doc, pixels: dict | None) -> str | None:
    """A data: URL of what the graphic shows: the browser's screenshot (--render), else an svg's own markup,
    sanitised, for rsvg-convert to rasterise when it is installed; a canvas has none without a browser."""
    if pixels is not None and id(el) in pixels:
        return pixels[id(el)] or None
    if el.name != "svg" or graphics.rsvg_convert() is None:
        return None
    data = graphics.svg_document(el, doc.by_id)
    return graphics.data_url(data, graphics.SVG_MEDIA_TYPE) if data is not None else None


def _graphic_message(el: Tag) -> str:
    if el.name == "canvas":
        what, how = ("Canvas has no accessible name and no fallback content",
                     'give it role="img" and an aria-label that says what it shows (or fallback content inside it '
                     "that does)")
    else:
        what, how = ("Inline SVG has no accessible name",
                     'give it role="img" and a <title> child or an aria-label that says what it shows')
    return (f"{what}, so screen readers skip it (ACT e88epe). If it carries information, {how}; if it is "
            'decorative, hide it with aria-hidden="true".')


# ---------------------------------------------------------------------------------------------------------------
# Names that exist but say nothing


_IMAGE_EXTENSION = re.compile(r"\.(?:jpe?g|png|gif|webp|avif|svg|bmp|tiff?|heic|ico)$", re.I)
_CAMERA_NAME = re.compile(r"^(?:img|dsc[nf]?|dcim|pxl|mvimg|gopr|dji|screenshot|screen shot|photo|image)[\s_-]*\d{3,}",
                          re.I)
# Ideographic scripts say a lot in one character (as extension/accessible-name.js IDEOGRAPHIC).
_IDEOGRAPHIC = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_PATH_LIKE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|www\.|\.{0,2}/)\S*$", re.I)
_PLACEHOLDERS = frozenset({
    "image", "images", "img", "photo", "photos", "photograph", "picture", "pic", "graphic", "logo", "spacer", "icon",
    "untitled", "placeholder", "thumbnail", "thumb", "banner", "screenshot", "figure", "blank", "default", "alt",
    "alt text", "alternative text", "image description", "description", "null", "undefined", "none",
})
_NUMBERED_PLACEHOLDER = re.compile(r"^(?:image|img|photo|picture|pic|graphic|icon|figure|untitled|slide)\s*\d+$")
# One-word placeholders are stop words; the words of the longer ones are not ("text" in "Img alt text" is a word).
_STOPWORDS = frozenset(p for p in _PLACEHOLDERS if " " not in p) | {
    "a", "an", "the", "of", "and", "or", "for", "with", "in", "on", "at", "to", "my", "our", "your", "this", "that",
}
_REDUNDANT_PREFIX = re.compile(
    r"^(?:(?:an?|the)\s+)?(?:image|picture|photo|photograph|graphic|illustration|screenshot|img|pic)"
    r"(?:\s+(?:of|showing|shows|depicting)\b|\s*[:\u2013\u2014-]\s)\s*\S",
    re.I,
)


def _looks_like_filename(text: str) -> bool:
    if _IMAGE_EXTENSION.search(text) or _CAMERA_NAME.match(text):
        return True
    # A URL or path, or one "word" joined by underscores (hero_banner_final), is not prose.
    return bool(_PATH_LIKE.match(text)) or (" " not in text and "_" in text)


def _is_word(token: str) -> bool:
    """Two or more characters with a letter among them (W3C, 3M, F1, MP3, 4K and H2O are names), not a stop word
    once its digits are set aside ("a1"): the rule of isWord in extension/accessible-name.js."""
    letters = re.sub(r"\d+", "", token)
    return len(token) >= 2 and bool(letters) and letters not in _STOPWORDS


def _words(text: str) -> list[str]:
    """Runs of letters and digits: "7-Eleven" is 7 and eleven, "W3C" one word."""
    return re.findall(r"[^\W_]+", text.lower())


def _placeholder_form(text: str) -> str:
    return " ".join(re.sub(r"[\W_]+", " ", text.lower()).split())


def suspicious_reason(alt: str, options: RuleOptions = RuleOptions()) -> str | None:
    """None when the alt text looks like a real description, else the id of the first rule it trips."""
    text = _clean(alt)
    if text is None:
        return None
    if _looks_like_filename(text):
        return "alt-suspicious-filename"
    form = _placeholder_form(text)
    if form in _PLACEHOLDERS or _NUMBERED_PLACEHOLDER.match(form):
        return "alt-placeholder"
    if _REDUNDANT_PREFIX.match(text):
        return "alt-redundant-prefix"
    meaningful = _IDEOGRAPHIC.search(text) or any(_is_word(w) for w in _words(text))
    if not meaningful:  # "Dog", "IBM", "UN logo", "W3C" and "猫" are names; "a logo" and "of the" are not
        return "alt-stopwords-only"
    if len(text) > options.max_alt_length:
        return "alt-too-long"
    return None


def _quote(text: str, limit: int = 80) -> str:
    return f'"{text}"' if len(text) <= limit else f'"{text[:limit - 1]}…"'


def _suspicious_message(rule: str, name: str, options: RuleOptions) -> str:
    q = _quote(name)
    if rule == "alt-suspicious-filename":
        return f"Alt text {q} looks like a file name: replace it with a description of what the image shows."
    if rule == "alt-placeholder":
        return (f"Alt text {q} is a placeholder that tells a listener nothing: describe what the image shows, "
                'or use alt="" if it is decorative.')
    if rule == "alt-stopwords-only":
        return (f"Alt text {q} has almost no meaningful words: describe what the image shows, "
                'or use alt="" if it is decorative.')
    if rule == "alt-redundant-prefix":
        return (f"Alt text {q} starts by saying it is an image, which screen readers already announce: "
                "start with what the image shows.")
    return (f"Alt text is {len(name)} characters long (more than {options.max_alt_length}): keep it to a short "
            "summary and put the long description in the page text or a caption.")


# ---------------------------------------------------------------------------------------------------------------
# Where the element is, what it looks like, which image it shows


def _snippet(el: Tag, limit: int) -> str:
    html = str(el)
    return html if len(html) <= limit else html[:limit - 1] + "…"


def _join(base: str, ref: str) -> str:
    try:
        return urljoin(base, ref)
    except ValueError:  # e.g. an unbalanced IPv6 bracket: keep what the page said
        return ref


def _first_srcset_url(srcset: str) -> str | None:
    """The URL of the first candidate (a URL runs to the next space; trailing commas end a bare candidate)."""
    tokens = srcset.split()
    if not tokens:
        return None
    return tokens[0].rstrip(",") or None


_BACKGROUND_PROPERTY = re.compile(r"(?:^|[;{\s])background(?:-image)?\s*:", re.I)
_URL_OPEN = re.compile(r"url\(", re.I)


def background_image_url(style: str) -> str | None:
    """The first url(...) of a background / background-image declaration in an inline style, by one left-to-right
    scan (each character is looked at a bounded number of times, so hostile markup cannot make it slow)."""
    pos = 0
    while True:
        prop = _BACKGROUND_PROPERTY.search(style, pos)
        if prop is None:
            return None
        end = style.find(";", prop.end())
        end = len(style) if end < 0 else end
        opened = _URL_OPEN.search(style, prop.end(), end)
        if opened is not None:
            i = opened.end()
            while i < len(style) and style[i] in " \t\r\n\f":
                i += 1
            quote = style[i] if i < len(style) and style[i] in "'\"" else ""
            close = style.find(quote or ")", i + len(quote))
            if close < 0:  # unterminated: no later url( in this declaration can be complete either
                return None
            return style[i + len(quote):close].strip() or None
        pos = end


def _raw_image_ref(el: Tag) -> str | None:
    if el.name == "img":
        return (_clean(_attr(el, "src")) or _first_srcset_url(_attr(el, "srcset") or "")
                or _clean(_attr(el, "data-src")))
    if el.name == "input":
        return _clean(_attr(el, "src"))
    if el.name == "object":
        return _clean(_attr(el, "data"))
    if el.name in ("area",) or _in_svg(el):
        return None
    return _clean(background_image_url(_attr(el, "style") or ""))  # role="img" on a box with a background image


def _base_url(soup: BeautifulSoup, page_url: str) -> str:
    base = soup.find("base", href=True)
    href = (_attr(base, "href") or "").strip() if base is not None else ""
    return _join(page_url, href) if href else page_url


def _pixels(value: str | None) -> float | None:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:px)?\s*", value or "")
    return float(match.group(1)) if match else None


_SPACER_NAME = re.compile(r"^(?:spacer|blank|pixel|transparent|clear|shim)(?:[_-]?\d+(?:x\d+)?)?\.(?:gif|png|webp)$"
                          r"|(?:^|[^\d])1x1(?:[^\d]|$)", re.I)


def _file_name(url: str) -> str:
    """The last path segment, by plain string splitting: a malformed URL must not raise."""
    if url.startswith("data:"):
        return ""
    return re.split(r"[?#]", url, maxsplit=1)[0].rsplit("/", 1)[-1]


def _decorative_candidate(el: Tag, image_url: str | None, url_counts: Counter, options: RuleOptions) -> bool:
    width, height = _pixels(_attr(el, "width")), _pixels(_attr(el, "height"))
    if width is not None and height is not None and width <= options.tiny_px and height <= options.tiny_px:
        return True
    if image_url is None:
        return False
    return bool(_SPACER_NAME.search(_file_name(image_url))) or url_counts[image_url] >= options.repeat_threshold


def _comparable(text: str | None) -> str:
    """Text as a listener hears it: case, punctuation and spacing do not matter."""
    return " ".join(re.sub(r"[^\w\s]", " ", (text or "").casefold()).split())


def _neighbour(node, forward: bool):
    """The nearest sibling that is an element or non-blank text."""
    while node is not None:
        if isinstance(node, Tag) or (isinstance(node, NavigableString) and not isinstance(node, Comment)
                                     and node.strip()):
            return node
        node = node.next_sibling if forward else node.previous_sibling
    return None


def _adjacent_texts(el: Tag, limit: int | None = None):
    """Rendered text a screen reader reads right before or after the element: its link, its figure's caption, its
    neighbours (each at most about ``limit`` characters)."""
    link = el.find_parent("a")
    if link is not None:
        yield rendered_text(link, limit)
    figure = el.find_parent("figure")
    caption = figure.find("figcaption", recursive=False) if figure is not None else None
    if caption is not None:
        yield rendered_text(caption, limit)
    for node in (_neighbour(el.previous_sibling, False), _neighbour(el.next_sibling, True)):
        if node is not None:
            yield rendered_text(node, limit)


def _duplicates_adjacent_text(el: Tag, name: str) -> bool:
    """axe's image-redundant-alt, widened to figure captions and neighbours: an <img> (the element it checks)
    whose alt repeats the text beside it. Presentational images are not read, so they repeat nothing."""
    if el.name != "img" or _is_presentational(el):
        return False
    wanted = _comparable(name)
    return bool(wanted) and any(_comparable(text) == wanted for text in _adjacent_texts(el))


# ---------------------------------------------------------------------------------------------------------------
# One page


@dataclass
class _Candidate:
    element: Tag
    rule: str
    image_url: str | None
    passed: bool = True
    name: str | None = None
    suspicious: str | None = None
    decorative: bool = False
    named_by_reference: bool = False  # aria-labelledby: pointing at visible text is meant to repeat it
    icon: str | None = None  # Finding.icon
    markup: dict[str, str] | None = None  # Finding.markup


class _OverBudget(Exception):
    pass


class _Budget:
    """The per-page limit on rule checking: time, looked at every few elements (a clock read is not free)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self._ticks = 0

    def tick(self) -> None:
        self._ticks += 1
        if self._ticks % 32 == 0 and time.monotonic() > self.deadline:
            raise _OverBudget(f"checking the page took longer than {self.seconds:g} s")


@dataclass
class _Page:
    url: str
    options: RuleOptions
    id_counts: Counter
    _positions: dict = field(default_factory=dict)  # id(parent) -> {id(child): (nth of its type, alone?)}

    def _step(self, el: Tag) -> str:
        """The element's tag, with :nth-of-type when it has siblings of its type. Each parent's children are numbered
        once, so a page of 50,000 sibling images stays linear."""
        parent = el.parent
        table = self._positions.get(id(parent))
        if table is None:
            seen: Counter = Counter()
            table = {}
            for child in parent.children:
                if isinstance(child, Tag):
                    seen[child.name] += 1
                    table[id(child)] = (child.name, seen[child.name])
            table = self._positions[id(parent)] = {k: (n, seen[name] == 1) for k, (name, n) in table.items()}
        nth, alone = table[id(el)]
        name = soupsieve.escape(el.name)
        return name if alone else f"{name}:nth-of-type({nth})"

    def selector(self, el: Tag) -> str:
        """A selector that finds exactly this element: its id if unique, else a child path from the nearest such
        id."""
        steps = []
        for node in chain([el], el.parents):
            if isinstance(node, BeautifulSoup):
                break
            node_id = _attr(node, "id")
            if node_id and self.id_counts[node_id] == 1:
                steps.append("#" + soupsieve.escape(node_id))
                break
            steps.append(self._step(node))
        return " > ".join(reversed(steps))

    def finding(self, c: _Candidate, rule: str, message: str) -> Finding:
        return Finding(
            page_url=self.url,
            rule=rule,
            wcag=WCAG[rule],
            severity=SEVERITY[rule],
            selector=self.selector(c.element),
            snippet=_snippet(c.element, self.options.snippet_chars),
            image_url=c.image_url,
            message=message,
            current_alt=c.name,
            decorative_candidate=c.decorative,
            icon=c.icon,
            markup=c.markup,
        )


def _parse(html: str | bytes) -> BeautifulSoup:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bs4 warns when markup looks like a file name or URL
        return BeautifulSoup(html, "lxml", multi_valued_attributes=None)


def _candidates(elements: list[Tag], base: str, budget: _Budget, found: list[_Candidate],
                hidden_images: list[Tag] | None = None) -> None:
    """The elements the rules apply to, in document order; with ``hidden_images``, the image elements hidden from
    assistive technology go there (the rules skip them; the image judgements do not)."""
    inert, hidden = {}, {}  # per element, remembered for nested candidates
    for el in elements:
        budget.tick()
        for rule in filter(None, (_rule_for(el), _control_rule(el))):  # <button role="img">: both
            if _is_inert(el, inert):
                break
            if rule != "area-alt" and _is_hidden(el, hidden):  # axe checks hidden areas
                if hidden_images is not None and rule not in CONTROL_RULES:
                    hidden_images.append(el)
                break
            ref = _raw_image_ref(el) if rule not in CONTROL_RULES else None  # a control's icon: once it fails
            found.append(_Candidate(el, rule, _join(base, ref) if ref else None))
        if el.name in ("svg", "canvas") and _graphic_element(el) and not _is_inert(el, inert) \
                and not _is_hidden(el, hidden):
            found.append(_Candidate(el, GRAPHIC_RULE, None))


def _evaluate_control(c: _Candidate, doc: _Doc, base: str, budget: _Budget, icons: set[int]) -> None:
    """A control's verdict and, when it has no name, its icon (whose element goes into ``icons``: that image's
    own finding then asks for a name too)."""
    c.passed = _control_passes(c.rule, c.element, doc, budget)
    found = None if c.passed else _icon(c.element, doc, budget)
    if found is not None:
        c.icon, icon_element, ref = found
        c.image_url = _join(base, ref) if ref else None
        c.markup = icon_markup(c.icon, icon_element, ref)
        icons.add(id(icon_element))


def _evaluate(c: _Candidate, doc: _Doc, options: RuleOptions) -> None:
    if c.rule == "input-image-alt":
        c.icon = "input-image"
        c.markup = icon_markup(c.icon, c.element)
    c.passed = _passes(c.rule, c.element, doc)
    c.name = accessible_name(c.element, doc)
    c.named_by_reference = _labelledby_text(c.element, doc) is not None
    if c.passed and c.name:
        c.suspicious = suspicious_reason(c.name, options)


def _shared_alt_different_images(candidates: list[_Candidate]) -> set[int]:
    """Indices of named images whose (otherwise fine) alt text is also used for a different image on the page."""
    urls_by_alt: dict[str, set[str]] = defaultdict(set)
    members: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(candidates):
        key = _comparable(c.name)
        if c.passed and key and c.suspicious is None and c.image_url is not None:
            urls_by_alt[key].add(c.image_url)
            members[key].append(i)
    return {i for key, idx in members.items() if len(urls_by_alt[key]) > 1 for i in idx}


def _findings_for(page: _Page, c: _Candidate, shared: bool) -> list[Finding]:
    if c.rule == GRAPHIC_RULE:
        return [] if c.passed else [page.finding(c, c.rule, _graphic_message(c.element))]
    if c.rule in CONTROL_RULES:
        return [] if c.passed else [page.finding(c, c.rule, _control_message(c.rule, c.element, c.icon))]
    if not c.passed:
        return [page.finding(c, c.rule, _failure_message(c.rule, c.element, c.decorative, c.icon))]
    if not c.name or not c.name.strip():
        return []
    out = []
    if c.suspicious:
        out.append(page.finding(c, c.suspicious, _suspicious_message(c.suspicious, c.name, page.options)))
    if shared:
        out.append(page.finding(c, "alt-duplicate-different-images",
                                f"Alt text {_quote(c.name)} is also used for a different image on this page: "
                                "say what distinguishes this one."))
    if not c.named_by_reference and _duplicates_adjacent_text(c.element, c.name):
        out.append(page.finding(c, "alt-duplicates-adjacent-text",
                                f"Alt text {_quote(c.name)} repeats the text right next to the image, so screen "
                                'readers read it twice: use alt="" or say something the text does not.'))
    return out


def _undisplayed(node: Tag) -> bool:
    return node.has_attr("hidden") or _STYLE_HIDDEN.search(_attr(node, "style") or "") is not None


class _ImageContexts:
    """Builds the :class:`ImageContext` of a page's images (``RuleOptions.judge_images``)."""

    def __init__(self, page: _Page, doc: _Doc, candidates: list[_Candidate], budget: _Budget):
        self.page, self.doc, self.budget = page, doc, budget
        # A control's verdict, by element: those the rules checked already, others on demand.
        self.named = {id(c.element): c.passed for c in candidates if c.rule in CONTROL_RULES}
        self.undisplayed: dict = {}
        self.out: list[ImageContext] = []

    def _control(self, el: Tag) -> tuple[str | None, bool]:
        """The nearest button or link around the element, and whether it has a name without this image."""
        for node in el.parents:
            if isinstance(node, BeautifulSoup):
                break
            rule = _control_rule(node)
            if rule is not None:
                named = self.named.get(id(node))
                if named is None:
                    named = self.named[id(node)] = _control_passes(rule, node, self.doc, self.budget)
                return ("button" if rule == "button-name" else "link"), named
        return None, False

    def add(self, el: Tag, image_url: str, name: str | None, hidden: bool, passed: bool) -> None:
        self.budget.tick()
        options = self.page.options
        decorative = hidden or _is_presentational(el) or (
            el.name == "img" and _attr(el, "alt") == "" and _aria_name(el, self.doc) is None)
        if el.name == "input":  # an image button is the control
            control, named = "button", passed
        else:
            control, named = self._control(el)
        texts = dict.fromkeys(" ".join(t.split()) for t in _adjacent_texts(el, options.nearby_chars))  # once each
        nearby = " ".join(filter(None, texts))[:options.nearby_chars]
        self.out.append(ImageContext(
            page_url=self.page.url, selector=self.page.selector(el), snippet=_snippet(el, options.snippet_chars),
            image_url=image_url, name=name, decorative=decorative, control=control, control_named=named,
            nearby_text=nearby))

    def add_graphic(self, el: Tag, image_url: str, name: str | None = None) -> None:
        """A graphic with pixels, outside any control (the rules' scope): unnamed (rule graphic-unnamed), ignored by
        screen readers as hidden images are (ACT e88epe), or named, judged as a named image is (ACT qt1vmo)."""
        self.budget.tick()
        options = self.page.options
        # The text beside it tells whether hiding it is right; a named graphic is not hidden.
        texts = dict.fromkeys(" ".join(t.split()) for t in _adjacent_texts(el, options.nearby_chars)) \
            if name is None else {}
        self.out.append(ImageContext(
            page_url=self.page.url, selector=self.page.selector(el), snippet=_snippet(el, options.snippet_chars),
            image_url=image_url, name=name, decorative=name is None,
            nearby_text=" ".join(filter(None, texts))[:options.nearby_chars], graphic=el.name))

    def add_hidden(self, images: list[tuple[Tag, str]], counts: Counter) -> None:
        """Images hidden from assistive technology (aria-hidden on them or an ancestor) but shown on screen."""
        for el, url in images:
            self.budget.tick()
            if _up_any(el, _undisplayed, self.undisplayed) or \
                    _decorative_candidate(el, url, counts, self.page.options):
                continue
            self.add(el, url, accessible_name(el, self.doc), True, True)


@dataclass
class PageCheck:
    """What checking one page found: its findings in document order, how many image elements it has (controls are
    not counted), and why
    checking stopped early (``over_budget``: too many elements or too long), with the findings up to there.
    ``images_to_judge``: with ``RuleOptions.judge_images``, what the page says about each of its images.
    ``graphics``: the pixels of the graphics its findings and contexts name by reference (``image_url``,
    :func:`graphics.graphic_ref`), a ``data:`` URL each; the crawl keeps them apart (``CrawlState.graphics``)."""
    findings: list[Finding]
    images: int
    over_budget: str | None = None
    images_to_judge: list[ImageContext] = field(default_factory=list)
    graphics: dict[str, str] = field(default_factory=dict)


def parse(html: str | bytes) -> BeautifulSoup:
    """The page as the rules read it (the crawler parses each page once and hands the tree to audit_page)."""
    return _parse(html)


def audit_page(html: str | bytes | BeautifulSoup, page_url: str, options: RuleOptions = RuleOptions(),
               pixels: dict[int, str | None] | None = None) -> PageCheck:
    """Check one page within ``options.max_elements`` and ``options.max_seconds``; an overrun is not an error but
    a note on the result, so one hostile page can neither stall nor end an audit. ``pixels``: what the browser
    showed of the page's graphics (``--render``), a data: URL per element (by ``id()``; None: it showed nothing),
    for the unnamed graphics' suggestions (with ``options.judge_images``)."""
    soup = html if isinstance(html, BeautifulSoup) else _parse(html)
    budget = _Budget(options.max_seconds)
    elements = soup.find_all(True, limit=options.max_elements + 1)
    note = None
    if len(elements) > options.max_elements:
        elements = elements[:options.max_elements]
        note = f"the page has more than {options.max_elements:,} elements: only the first ones were checked"
    doc = _Doc(soup, elements)
    candidates: list[_Candidate] = []
    hidden_images: list[Tag] | None = [] if options.judge_images else None
    icons: set[int] = set()  # the elements that are an unnamed control's only content (a control comes first)
    evaluated = 0
    base = _base_url(soup, page_url)
    url_counts: Counter = Counter()
    graphics_page = _GraphicsPage(elements)
    try:
        _candidates(elements, base, budget, candidates, hidden_images)
        url_counts = Counter(c.image_url for c in candidates if c.image_url)
        for c in candidates:
            budget.tick()
            if c.rule == GRAPHIC_RULE:
                c.passed = not _graphic_fires(c.element, doc, options, graphics_page, budget)
                if not c.passed and options.judge_images:
                    c.image_url = _graphic_pixels(c.element, doc, pixels)
            elif c.rule in CONTROL_RULES:
                _evaluate_control(c, doc, base, budget, icons)
            else:
                _evaluate(c, doc, options)
                if c.rule == "image-alt" and id(c.element) in icons:
                    c.icon = "img"  # a control's icon: it needs a name, however small or repeated it is
                    c.markup = icon_markup(c.icon, c.element)
                else:
                    c.decorative = _decorative_candidate(c.element, c.image_url, url_counts, options)
            evaluated += 1
    except _OverBudget as e:
        note = f"{e}: only the images before the cut were checked"
        candidates = candidates[:evaluated]
        budget = _Budget(options.max_seconds)  # a second allowance to write up what was checked
    page = _Page(page_url, options, doc.counts())
    pixels_out: dict[str, str] = {}  # reference -> data: URL
    for c in candidates:
        if c.rule == GRAPHIC_RULE and c.image_url:  # its pixels (judge_images): the finding names them
            ref = graphics.graphic_ref(page_url, page.selector(c.element))
            pixels_out[ref], c.image_url = c.image_url, ref
    shared = _shared_alt_different_images(candidates)
    findings: list[Finding] = []
    try:
        for i, c in enumerate(candidates):
            budget.tick()
            findings.extend(_findings_for(page, c, i in shared))
    except _OverBudget as e:
        note = note or f"{e}: only the findings before the cut are reported"
    contexts: list[ImageContext] = []
    if options.judge_images and note is None:  # a page over budget is reported without its judgements
        try:
            contexts = _judge_contexts(page, doc, candidates, hidden_images, base, url_counts, budget,
                                       (graphics_page, pixels, pixels_out))
        except _OverBudget as e:
            note = f"{e}: its images were not judged (their findings are all reported)"
    images = sum(c.rule not in CONTROL_RULES and c.rule != GRAPHIC_RULE for c in candidates)
    return PageCheck(findings, images, note, contexts, pixels_out)


def _judge_contexts(page: _Page, doc: _Doc, candidates: list[_Candidate], hidden: list[Tag], base: str,
                    url_counts: Counter, budget: _Budget, graphics_of: tuple) -> list[ImageContext]:
    """Every image's :class:`ImageContext` (images with a file, not decorative candidates; graphics with pixels,
    unnamed or named: ``graphics_of`` is the page's graphics, the browser's screenshots and the pixels by
    reference, which the named graphics' are added to), within the page's budget (raises _OverBudget at the
    cut)."""
    graphics_page, shots, pixels_out = graphics_of
    contexts = _ImageContexts(page, doc, candidates, budget)
    refs = ((el, _raw_image_ref(el)) for el in hidden)
    hidden_images = [(el, _join(base, ref)) for el, ref in refs if ref]
    counts = url_counts + Counter(url for _, url in hidden_images)  # repeated: shown or hidden, it is an ornament
    for c in candidates:
        if c.element.name in _NAMED_GRAPHIC_ROLES and c.passed:
            budget.tick()
            name = _named_graphic(c, doc, page.options, graphics_page)
            data = _graphic_pixels(c.element, doc, shots) if name else None
            if data:
                ref = graphics.graphic_ref(page.url, page.selector(c.element))
                pixels_out[ref] = data
                contexts.add_graphic(c.element, ref, name)
                continue
        if c.rule == GRAPHIC_RULE:
            if not c.passed and c.image_url:
                contexts.add_graphic(c.element, c.image_url)
        elif c.rule not in CONTROL_RULES and c.image_url and not c.decorative \
                and counts[c.image_url] < page.options.repeat_threshold:
            contexts.add(c.element, c.image_url, c.name, False, c.passed)
    contexts.add_hidden(hidden_images, counts)
    return contexts.out


def check_page(html: str | bytes, page_url: str, options: RuleOptions = RuleOptions()) -> list[Finding]:
    """Every WCAG 1.1.1 failure, unnamed button or link and suspicious text alternative on one page, in document
    order."""
    return audit_page(html, page_url, options).findings
