"""What to say about an image, given its evidence: the one place that decides, for every surface.

The rules, in order (a false description is worse than none):

1. A kind other than photo is named for what it is (text, screenshot, chart, icon, logo, illustration), with the
   text it shows when OCR read some. A photo caption is never spoken for it.
2. When the classifier is not sure the image is a photo, and not sure what else it is (no other kind is likelier
   than photo and above ``kind_min``, or the image is unlike every fitted example of the likeliest kind: a galaxy
   is no icon however sure a linear classifier is), only its text is said. Kinds in one of ``kind_groups`` (icon
   and logo) count together, and the likelier is named.
3. A photo unlike anything the captioner learned from (out of domain) gets no caption: the ImageNet classifier's
   plain word when it is confident (``concept_min``; the classifier learned from object photos much like these,
   and is measured on them in the model card), else its text, else nothing (``reason="out_of_domain"``).
4. A photo's caption is spoken only above ``withhold_below`` calibrated confidence, hedged more strongly below
   ``hedge_below``; below ``hedge_below`` a confident concept replaces it (an unsure caption's details are what it
   gets wrong: default-1's "a cat on a bed with a tennis ball" for a cat's face became "a cat"). Without fitted heads
   the raw token score stands in, and a caption is never said with the sure wording: the raw score is no probability
   (in the model card, default-1's raw 0.2-0.4 was acceptable 25 % of the time, not 36 %; default-2's raw 0.8-1.0
   53 %).

0. An image that shows nothing (one colour, fully transparent, 1x1) is never described (``reason="blank"``).

An icon or logo is named by what it means or which brand it shows when the meaning head is sure ("Icon: Search.",
"Logo: GitHub."), or when its text names a known brand; that, not the kind classifier, decides icon or logo. Text
is quoted only when it reads as language (``language_lines``): a chart's tick labels or a menu's 25 items are not
read aloud; a chart or a screenshot is named by its title.

An icon whose page names it in its code (an icon font's class, a ligature, a sprite's id: ``markup.py``) is named
by that name first, unless its pixels show a photo: the author chose that glyph by that name.

Without OCR text, a non-photo is still named by its kind ("Screenshot."): true, if less useful. Thresholds are
``Policy`` fields, configurable per deployment; the defaults come from the measurements in the model card.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .evidence import Evidence
from .markup import markup_name, needs_icon_pixels
from .meanings import OTHER, Vocabulary

NON_PHOTO = ("text", "screenshot", "chart", "icon", "logo", "illustration")
ICON_LIKE = ("icon", "logo", "illustration")  # kinds whose images the meaning head may name


def likeliest_non_photo(kind_probs: dict[str, float]) -> str:
    """What the image is if it is no photo: the likeliest of the other kinds."""
    return max(NON_PHOTO, key=lambda k: kind_probs.get(k, 0.0))


@dataclass(frozen=True)
class Policy:
    withhold_below: float = 0.15  # calibrated confidence under which a caption is not spoken
    hedge_below: float = 0.35  # ... and under which it is hedged more strongly
    photo_min: float = 0.6  # P(photo) a caption needs
    kind_min: float = 0.7  # probability a non-photo kind needs to be named (chosen on the dev set)
    concept_min: float = 0.8  # classifier probability a concept needs to be said instead of a caption
    # Kinds too alike to tell apart reliably, and alike enough that either name serves a listener: their
    # probabilities are added up, and the likelier one is named (dev: icons at 0.57 icon + 0.40 logo were withheld).
    kind_groups: tuple[tuple[str, ...], ...] = (("icon", "logo"),)
    min_text_words: int = 1  # OCR words that count as text
    max_text_chars: int = 150  # text is trimmed to this, at a word boundary
    blank_top_colour: float = 0.995  # an image whose visible pixels are this much one colour shows nothing
    meaning_min: float | None = None  # probability a meaning or brand needs; None: the head's own (chosen on
    # icon sets it never saw: scripts/fit_meanings.py)
    max_control_words: int = 4  # logo text longer than this is no name for a control
    # P(map) of the chart-type head at which an image the kind head takes for an illustration is said as a map: the
    # kind head learned few maps (chosen on the honesty set's dev and train splits; docs/describe.md)
    map_min: float = 0.83


@dataclass(frozen=True)
class Decision:
    kind: str  # the kind the result reports: one of heads.KINDS, or "unknown"
    say_caption: bool
    sure: bool  # the caption is above hedge_below
    text: str  # the (trimmed) text to quote, "" for none
    named: bool  # the kind is said
    reason: str | None  # why nothing is said (alt null), else None
    concept: str = ""  # a plain word said instead of the caption ("cat")
    meaning: str = ""  # the meaning class said ("meaning:search", "brand:github"), "" for none
    label: str = ""  # ... and its words ("Search", "GitHub")
    p_meaning: float = 0.0
    source: str = ""  # where the meaning comes from: "image" (the meaning head), "text" (OCR), "markup" (the page)
    titled: bool = False  # ``text`` is the image's title (a chart's, a screenshot's), not all it says
    chart_type: str = ""  # the chart type said ("chart:bar"), "" for none
    chart_label: str = ""  # ... and its words ("Bar chart")
    p_chart: float = 0.0

    @property
    def brand(self) -> bool:
        return self.meaning.startswith("brand:")

    @property
    def control_name(self) -> str:
        """What a control whose only content is this image should be called ("Search", "GitHub", a logo's short
        text), "" when the image gives no such name."""
        if self.label:
            return self.label
        return self.text if self.kind == "logo" and self.text and not self.titled else ""


def trim(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(" ,;:.-") + " …"


def _title_like(line: str) -> bool:
    return sum(len(re.sub(r"[^A-Za-z]", "", w)) >= 3 for w in line.split()) >= 2


_NUMBER = re.compile(r"^[-+−(]?[$€£¥]?\d[\d.,:/%x×]*[%)kKmM]?$")
_REAL_WORD = re.compile(r"^[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ'’-]{2,}$|^[A-Z0-9][A-Za-z0-9]*\d[A-Za-z0-9]*$")


def language_lines(lines: list[str], lists: bool = False) -> list[str]:
    """The OCR lines that read as language and are worth quoting: not a chart's tick labels ("130 120 100 1996
    2000"), not stray letters, and (unless ``lists``: a page of text, whose headings are its content) not a menu or
    a list of many short items. [] when the text is none of them."""
    words = [w.strip(".,:;!?()[]\"“”'") for line in lines for w in line.split()]
    words = [w for w in words if w]
    if not words:
        return []
    numbers = sum(bool(_NUMBER.match(w)) for w in words)
    real = sum(bool(_REAL_WORD.match(w)) for w in words)
    if numbers >= 0.4 * len(words) or real < max(1, 0.5 * (len(words) - numbers)):
        return []
    if not lists and len(lines) >= 6 and sorted(len(line.split()) for line in lines)[len(lines) // 2] <= 3:
        return []  # a menu, a legend, a list of labels: read aloud, a run of unconnected words
    return lines


# Words of application menu bars ("File Edit View Help"): a line of them alone is no window's title.
MENU_WORDS = frozenset("file edit view help tools window insert format go bookmarks history image layers colors "
                       "colours filters select windows options settings run debug project build code navigate "
                       "refactor git terminal selection table data sheet extensions favorites favourites "
                       "preferences profiles".split())


def _reads_as_title(line: str) -> bool:
    """Two real words or more, at most 12 words, starting with a capital or a digit, no "Label: value" field."""
    return (_title_like(line) and len(line.split()) <= 12 and (line[:1].isupper() or line[:1].isdigit())
            and not re.search(r"\w:\s", line))


def _title(lines: list[str], kind: str) -> str:
    """A chart's title: its first line that reads as one among the first three (tick labels may come first in
    OCR's order). A screenshot's: its first line, or the one after a menu bar ("File Edit View"), when it reads as
    one: a window's title bar is its top line, and a line further down is a label or a field."""
    for line in lines[:3]:
        if kind == "screenshot" and all(w.lower().strip(".,:") in MENU_WORDS for w in line.split()):
            continue
        if _reads_as_title(line):
            return line
        if kind == "screenshot":
            return ""
    return ""


def blank(ev: Evidence, policy: Policy) -> bool:
    """The image shows nothing: one colour, fully transparent, or a pixel or two (a lazy loader's placeholder
    stretched by CSS to a picture's size)."""
    px = ev.pixels
    if px is None:
        return False
    # One colour counts only where nothing is transparent: a glyph drawn in one colour on a transparent background
    # has the same colour in every visible pixel, and its shape is in the alpha channel.
    return (px.width * px.height <= 4 or px.transparent >= 0.99
            or (px.top_colour >= policy.blank_top_colour and px.transparent <= 0.01))


def sure_class(probs: dict[str, float], labels: dict[str, str], threshold: float | None,
               brand_threshold: float | None = None) -> tuple[str, str, float]:
    """(class, words, probability) of a named-class head's likeliest class when it is not "other" and reaches the
    threshold (``brand_threshold`` for a brand, when given), else ("", "", 0)."""
    if probs:
        key, p = max(probs.items(), key=lambda kv: kv[1])
        if key.startswith("brand:") and brand_threshold is not None:
            threshold = brand_threshold
        if key != OTHER and threshold is not None and p >= threshold and key in labels:
            return key, labels[key], p
    return "", "", 0.0


def kind_group(kind: str, policy: Policy) -> tuple[str, ...]:
    """The kinds counted together with ``kind`` (its group in ``policy.kind_groups``, itself included): their
    probabilities are added up, and a true kind anywhere in the group is named rightly."""
    return next((g for g in policy.kind_groups if kind in g), (kind,))


def meaning_of(ev: Evidence, policy: Policy) -> tuple[str, str, float, str]:
    """(class, words, probability, source) of the meaning or brand to say, ("", "", 0, "") for none: the meaning
    head's sure class ("image"), else a brand the logo's text names ("text")."""
    if policy.meaning_min is not None:
        found = sure_class(ev.meaning_probs, ev.meaning_labels, policy.meaning_min)
    else:
        found = sure_class(ev.meaning_probs, ev.meaning_labels, ev.meaning_threshold, ev.brand_threshold)
    if found[0]:
        return (*found, "image")
    brand = Vocabulary.load().brand_named(ev.text) if ev.text_lines else None
    return (brand.key, brand.label, 1.0, "text") if brand else ("", "", 0.0, "")


def named_by_markup(markup: dict[str, str], icon_like: bool, p_photo: float, policy: Policy) -> Decision | None:
    """The icon named as the page's markup names it (``markup.markup_name``), unless its pixels show a photo; an
    image file's names only when they show an icon, a logo or a drawing (``icon_like``; a photo "home.jpg" is no
    home icon: ``markup.needs_icon_pixels``)."""
    if p_photo >= policy.photo_min or (needs_icon_pixels(markup) and not icon_like):
        return None
    name = markup_name(markup)
    return None if name is None else named_icon(name.meaning.key, name.meaning.label, 1.0, "markup")


def named_icon(key: str, label: str, p: float, source: str) -> Decision:
    """An icon said by its meaning, or a logo by its brand ("brand:..."): that, not the kind head, decides which."""
    kind = "logo" if key.startswith("brand:") else "icon"
    return Decision(kind, False, False, "", True, None, meaning=key, label=label, p_meaning=p, source=source)


def decide(ev: Evidence, policy: Policy, markup: dict[str, str] | None = None) -> Decision:
    """``markup``: what the page's code calls the image, when it is a control's icon (``markup.check_markup``)."""
    if blank(ev, policy):
        return Decision("blank", False, False, "", False, "blank")
    probs = ev.kind_probs or {"photo": 1.0}
    p_photo = probs.get("photo", 0.0)
    best = likeliest_non_photo(probs)
    p_best = sum(probs.get(k, 0.0) for k in kind_group(best, policy))
    icon_like = best in ICON_LIKE and p_best > p_photo  # an icon, a logo or a drawing rather than a photo
    by_markup = named_by_markup(markup, icon_like, p_photo, policy) if markup else None
    if by_markup is not None:
        return by_markup
    lines = language_lines(ev.text_lines, lists=best == "text" and p_photo < policy.photo_min)
    words = sum(len(line.split()) for line in lines)
    text = trim(" ".join(lines), policy.max_text_chars) if words >= policy.min_text_words else ""
    if p_photo < policy.photo_min:
        if icon_like:  # icon or logo: by its meaning or brand, when one is sure
            key, label, p, source = meaning_of(ev, policy)
            if key:
                return named_icon(key, label, p, source)
        if p_best >= policy.kind_min and p_best > p_photo and ev.familiar(best):  # the likeliest kind only
            if best == "illustration" and ev.chart_probs.get("chart:map", 0.0) >= policy.map_min:
                best = "chart"  # a map drawn as an illustration: "Map."
            if best in ("chart", "screenshot"):  # named by its title when OCR finds one, never by all it shows
                bar = ev.title_bar if best == "screenshot" and _reads_as_title(ev.title_bar) else ""
                title = trim(bar or _title(ev.text_lines, best), policy.max_text_chars)
                chart = (sure_class(ev.chart_probs, ev.chart_labels, ev.chart_threshold) if best == "chart"
                         else ("",) * 3)
                return Decision(best, False, False, title, True, None, titled=bool(title), chart_type=chart[0],
                                chart_label=chart[1], p_chart=chart[2] or 0.0)
            if best == "logo" and text and len(text.split()) > policy.max_control_words:
                text = ""  # a logo is named by a short text of its own, not a paragraph beside it
            return Decision(best, False, False, text, True, None)
        if text:
            return Decision("unknown", False, False, text, False, None)
        return Decision("unknown", False, False, "", False, "uncertain_kind")
    concept = ev.concepts[0].word if ev.concepts and ev.concepts[0].p >= policy.concept_min else ""
    if ev.out_of_domain:
        return Decision("photo", False, False, text, False, None if text or concept else "out_of_domain", concept)
    conf = ev.confidence if ev.confidence is not None else ev.raw_confidence
    if concept and conf < policy.hedge_below:
        return Decision("photo", False, False, text, False, None, concept)
    if not ev.caption or conf < policy.withhold_below:
        return Decision("photo", False, False, text, False, None if text else "low_confidence")
    calibrated = ev.confidence is not None
    return Decision("photo", True, calibrated and conf >= policy.hedge_below, text, False, None)
