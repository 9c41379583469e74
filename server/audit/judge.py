"""Judgements of an image against what its markup says about it: findings no markup rule can make, because they
need to know what the image shows (the describe pipeline's evidence: its kind, the text OCR read, the brand or icon
meaning the heads are sure of, a chart's type).

Three judgements, each a person has to confirm (severity ``needs review``):

* ``image-informative-hidden`` (ACT e88epe, WCAG 1.1.1): an image marked decorative (alt="", role none or
  presentation, aria-hidden) whose evidence says it carries information: readable text, a logo, a chart, or an icon
  that is the only content of a button or link without another name.
* ``image-name-contradicts-text`` (ACT qt1vmo, WCAG 1.1.1): OCR reads words in the image that its name omits (the
  name says nothing but "banner", "logo", "company logo") or contradicts (no word of the text is in the name: a logo
  that says "W3C" named "ERCIM logo").
* ``image-of-text`` (WCAG 1.4.5, ACT 0va7u6): an image that is mostly text, with that text as the suggestion and a
  note that real text is better.

A false finding costs a reviewer's time and the report's credibility, so each judgement fires only on strong
evidence, and matching a name against OCR text errs towards "they agree": case, accents and punctuation are ignored,
number words equal digits ("twenty" = "20"), "%" is "percent", a word OCR cut short or misread by a letter still
matches, an acronym matches the words it abbreviates (W3C needs no expansion; "PSF" = "Python Software Foundation"),
and any one shared word is agreement (OCR often reads only part of an image). Photos are never judged: text in a
photo (a street sign, a shirt) is not what the photo is about, and the kind classifier's other kinds are where it is
sure (``kind_min`` in :mod:`server.describe.decision`). The false-finding rates on correctly named real images are
measured by ``scripts/eval_judge.py`` and reported in ``docs/audit-judgements.md``.

Everything here is a pure function of :class:`ImageMarkup` (what the page says) and the pipeline's result dict
(``server.describe.pipeline.RESULT_FIELDS``, the same from the in-process describer and the service).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

WCAG_1_1_1 = "WCAG 2.2 SC 1.1.1 (A)"
WCAG_1_4_5 = "WCAG 2.2 SC 1.4.5 (AA)"
NEEDS_REVIEW = "needs review"
ACT = {
    "image-informative-hidden": "e88epe",
    "image-name-contradicts-text": "qt1vmo",
    "image-of-text": "0va7u6",
}
JUDGEMENTS = tuple(ACT)
WCAG = {"image-informative-hidden": WCAG_1_1_1, "image-name-contradicts-text": WCAG_1_1_1,
        "image-of-text": WCAG_1_4_5}

# A text of more words than this is a page, not a banner or a logo: a true name summarises it and need not share
# its words, so it is never said to contradict one.
MAX_CONTRADICTED_WORDS = 12
# Kinds whose text is the image's message. A chart's or a screenshot's text is its title, one part of what it shows,
# which a true name may well not repeat ("Bar chart of rainfall" for "Monthly precipitation, Bergen"); an icon's or
# an illustration's text is a detail. Those are judged only when their name says nothing at all.
MESSAGE_KINDS = ("text", "logo", "unknown")
# Kinds whose readable text makes a decorative image informative (a photo's text is not its message).
TEXT_KINDS = ("text", "logo", "unknown", "chart", "screenshot")
MIN_HIDDEN_TEXT_WORDS = 2  # ... and how many words it must read (a logo: one), so that OCR noise is not information
MIN_IMAGE_OF_TEXT_WORDS = 2

# Words that name nothing in an image: function words, and the words people put in a name instead of a description
# ("Company logo", "Header banner image"). A name made only of these omits whatever the image says. Words that can
# be a true name on their own ("Home", "Search", "Menu") are not here.
FUNCTION_WORDS = frozenset("""
a an the of and or for with without in on at to from by as into onto over under about is are be this that these
those it its my our your their his her we you us me
""".split())
GENERIC_WORDS = frozenset("""
image images img picture pictures pic pics photo photos photograph graphic graphics banner banners logo logos
logotype icon icons button btn figure fig illustration screenshot screen shot chart diagram header footer hero
background bg decoration decorative ornament ad ads advert advertisement promo promotional sponsor sponsored company
brand placeholder thumbnail thumb untitled default alt text slide click here link new main top site website
""".split())
STOP_WORDS = FUNCTION_WORDS | GENERIC_WORDS
NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
    "eighteen nineteen twenty".split())} | {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60",
                                            "seventy": "70", "eighty": "80", "ninety": "90", "hundred": "100",
                                            "first": "1st", "second": "2nd", "third": "3rd", "pct": "percent"}


@dataclass(frozen=True)
class ImageMarkup:
    """What the page says about one image (all from markup: :mod:`server.audit.rules` computes each of these).

    ``name``: its accessible name (None or "" for none). ``decorative``: hidden from screen readers (alt="", role
    none or presentation, aria-hidden on it or an ancestor). ``control``: "button" or "link" when the image sits
    inside one, else None. ``control_named``: that control has a name without this image (other text, an
    aria-label): a decorative icon beside a button's text is right. ``nearby_text``: the text a screen reader reads
    right next to the image (its link, its figure caption, its neighbours): a decorative image whose words are all
    there repeats them, and alt="" is right for it."""

    name: str | None
    decorative: bool = False
    control: str | None = None
    control_named: bool = False
    nearby_text: str = ""
    # "svg" or "canvas": not an image element but a graphic without a name, which screen readers skip as they skip
    # a hidden image (ACT e88epe's "ignored svg" and "ignored canvas"); ``decorative`` is then True.
    graphic: str | None = None


@dataclass(frozen=True)
class Judgement:
    rule: str  # one of JUDGEMENTS
    message: str
    evidence: dict  # what triggered it, from the pipeline's result: kind, text, brand, meaning, chart_type
    suggestion: str | None  # the text to put in the page (the image's text, "<Brand> logo"), None for none
    # What the suggestion comes from: "text" (read by OCR), "brand" (the meaning head's logo), "control_name" (the
    # pipeline's name for a control's icon); None without a suggestion.
    basis: str | None = None
    severity: str = NEEDS_REVIEW
    act: str = ""
    wcag: str = ""

    def __post_init__(self):
        object.__setattr__(self, "act", self.act or ACT[self.rule])
        object.__setattr__(self, "wcag", self.wcag or WCAG[self.rule])
        if self.suggestion is None:
            object.__setattr__(self, "basis", None)

    def to_dict(self) -> dict:
        return {"rule": self.rule, "act": self.act, "wcag": self.wcag, "severity": self.severity,
                "message": self.message, "evidence": self.evidence, "suggestion": self.suggestion,
                "basis": self.basis}


# ---------------------------------------------------------------------------------------------------------------
# Words


def tokens(text: str | None) -> list[str]:
    """Lower-case words and numbers of a text, accents dropped, number words as digits, "%" as "percent"."""
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    return [NUMBER_WORDS.get(t, t) for t in (("percent" if t == "%" else t) for t in re.findall(r"[^\W_]+|%", text))]


def content_words(text: str | None) -> list[str]:
    """The words of a text that can name something: not function words, not "logo", "image", "banner"."""
    return [t for t in tokens(text) if t not in STOP_WORDS]


def _solid(word: str) -> bool:
    """A word OCR is unlikely to have made up: three letters or more, or letters with digits (W3C, MP3, 4K)."""
    letters = sum(c.isalpha() for c in word)
    return letters >= 3 or (letters >= 1 and any(c.isdigit() for c in word) and len(word) >= 2)


def solid_words(text: str | None) -> list[str]:
    return [w for w in content_words(text) if _solid(w)]


@lru_cache(maxsize=4096)
def _edits_within(a: str, b: str, k: int) -> bool:
    """Levenshtein distance of a and b is at most k (both short: a plain table)."""
    if abs(len(a) - len(b)) > k:
        return False
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1] <= k


def words_match(a: str, b: str) -> bool:
    """The same word, as far as OCR and spelling can tell: equal; one cut short (four letters or more: "Prefer" for
    "Preferences", "sale" for "sales"); one letter misread (four letters or more; two from eight); a single letter
    of a name as the first letter of a word ("R" in "R logo")."""
    if a == b:
        return True
    short, long_ = sorted((a, b), key=len)
    if len(short) == 1:
        return short.isalpha() and long_.startswith(short)
    if len(short) >= 4 and long_.startswith(short):
        return True
    if len(short) >= 4:
        return _edits_within(a, b, 2 if len(short) >= 8 else 1)
    return False


def _initials(words: list[str], size: int) -> set[str]:
    return {"".join(w[0] for w in words[i:i + size]) for i in range(len(words) - size + 1)}


def _abbreviates(acronym: str, words: list[str]) -> bool:
    """``acronym`` (2-6 letters) is the initials of consecutive ``words``, with or without their function words; a
    digit repeats the letter before it ("W3C" = World Wide Web Consortium)."""
    acronym = re.sub(r"([a-z])([2-9])", lambda m: m.group(1) * int(m.group(2)), acronym)
    if not 2 <= len(acronym) <= 6 or not acronym.isalpha():
        return False
    content = [w for w in words if w not in FUNCTION_WORDS]
    return acronym in _initials(words, len(acronym)) | _initials(content, len(acronym))


def agrees(name: str, text: str) -> bool:
    """Whether a name and an image's text share a word (in the sense of :func:`words_match`), or one abbreviates
    the other, or one's word is in the other's words run together ("W3 C" and "W3C")."""
    name_all, text_all = tokens(name), tokens(text)
    name_words, text_words = content_words(name), content_words(text)
    if any(words_match(n, t) for n in name_words for t in text_words):
        return True
    name_joined, text_joined = "".join(name_all), "".join(text_all)
    if any(len(t) >= 3 and t in name_joined for t in text_words) or \
            any(len(n) >= 3 and n in text_joined for n in name_words):
        return True
    return any(_abbreviates(t, name_all) for t in text_words) or any(_abbreviates(n, text_all) for n in name_words)


def _covered(words: list[str], text: str) -> bool:
    """Every one of ``words`` is said in ``text`` (a decorative image's words already read beside it)."""
    around = content_words(text)
    return bool(words) and all(any(words_match(w, a) for a in around) for w in words)


# ---------------------------------------------------------------------------------------------------------------
# The evidence


def _label(value, key: str) -> str:
    return str(value.get(key) or "") if isinstance(value, dict) else ""


def _evidence(result: dict, *keys: str) -> dict:
    """The fields of the result a judgement rests on, as the report shows them."""
    out = {"kind": result.get("kind") or "unknown"}
    for key in keys:
        if result.get(key) is not None:
            out[key] = result[key]
    return out


def _image_text(result: dict) -> str:
    return " ".join(str(result.get("text") or "").split())


def _quote(text: str, limit: int = 80) -> str:
    return f"“{text}”" if len(text) <= limit else f"“{text[:limit - 1]}…”"


def _is_photo(result: dict) -> bool:
    return (result.get("kind") or "unknown") == "photo"


# ---------------------------------------------------------------------------------------------------------------
# The judgements


def _skipped(markup: ImageMarkup) -> str:
    """How the image is lost to a listener, as a message begins."""
    if markup.graphic:
        return f"{'Canvas' if markup.graphic == 'canvas' else 'Inline SVG'} has no name, so screen readers skip it"
    return "Image is hidden from screen readers"


def _a_name(markup: ImageMarkup) -> str:
    return 'role="img" and an aria-label' if markup.graphic else "an alt"


def informative_image_hidden(markup: ImageMarkup, result: dict) -> Judgement | None:
    """ACT e88epe: an image hidden from screen readers (or a graphic they skip: ``markup.graphic``) whose evidence
    says it carries information."""
    if not markup.decorative or _is_photo(result):
        return None
    kind = result.get("kind") or "unknown"
    brand, meaning = _label(result.get("brand"), "name"), _label(result.get("meaning"), "label")
    text = _image_text(result)
    control_name = str(result.get("control_name") or "").strip()
    if markup.control and not markup.control_named and (kind in ("icon", "logo") or brand or meaning or control_name):
        what = "a logo" if kind == "logo" or brand else "an icon"
        if brand or meaning:
            what += f" ({brand or meaning})"
        return Judgement(
            "image-informative-hidden",
            f"Image is hidden from screen readers but is {what} and the only content of a {markup.control} that has "
            f"no other name: give it an alt that says what the {markup.control} "
            f"{'does' if markup.control == 'button' else 'leads to'}.",
            _evidence(result, "meaning", "brand", "control_name", "text"), control_name or None, "control_name")
    words = solid_words(text)
    if markup.nearby_text and _covered(words or content_words(brand), markup.nearby_text):
        return None  # its words are read right beside it: hiding the image is right
    if brand:
        fix = f'aria-label="{brand}"' if markup.graphic else f'alt="{brand}"'
        return Judgement(
            "image-informative-hidden",
            f"{_skipped(markup)}, but it is the {brand} logo: if it says something the page does not say beside it, "
            f"give it {fix}.",
            _evidence(result, "brand", "text"), f"{brand} logo", "brand")
    if kind in TEXT_KINDS and text and len(words) >= (1 if kind == "logo" else MIN_HIDDEN_TEXT_WORDS):
        what = {"logo": "a logo that reads", "chart": "a chart titled", "screenshot": "a screenshot titled"}.get(
            kind, "readable text:")
        suggestion = f"{text} logo" if kind == "logo" else text
        return Judgement(
            "image-informative-hidden",
            f"{_skipped(markup)}, but it shows {what} {_quote(text)}: unless the page says the same right beside it, "
            f"give it {_a_name(markup)} with that text.",
            _evidence(result, "text", "chart_type"), suggestion, "text")
    if kind == "chart":
        chart = _label(result.get("chart_type"), "label")
        return Judgement(
            "image-informative-hidden",
            f"{_skipped(markup)}, but it is a {chart.lower() if chart else 'chart'}: give it {_a_name(markup)} "
            "that says what it shows (and where its data is), unless the page says that right beside it.",
            _evidence(result, "chart_type"), None)
    return None


def name_contradicts_text(markup: ImageMarkup, result: dict) -> Judgement | None:
    """ACT qt1vmo: OCR reads words that the image's name omits (it names nothing) or contradicts (shares none)."""
    name = " ".join((markup.name or "").split())
    text = _image_text(result)
    if markup.decorative or not name or not text or _is_photo(result):
        return None
    kind = result.get("kind") or "unknown"
    words = solid_words(text)
    if len(words) < (1 if kind in MESSAGE_KINDS else MIN_HIDDEN_TEXT_WORDS):
        return None  # one word OCR found on an icon or an illustration may be noise
    if not content_words(name):
        return Judgement(
            "image-name-contradicts-text",
            f"The image's name {_quote(name)} says nothing of what the image says: it reads {_quote(text)}.",
            _evidence(result, "text", "brand"), text if kind != "logo" else f"{text} logo", "text")
    brand = _label(result.get("brand"), "name")
    if (markup.control or kind not in MESSAGE_KINDS or len(tokens(text)) > MAX_CONTRADICTED_WORDS
            or agrees(name, text) or (brand and agrees(name, brand))):
        return None
    return Judgement(
        "image-name-contradicts-text",
        f"The image reads {_quote(text)}, but its name {_quote(name)} says none of it: check which is right.",
        _evidence(result, "text", "brand"), text if kind != "logo" else f"{text} logo", "text")


def image_of_text(markup: ImageMarkup, result: dict) -> Judgement | None:
    """WCAG 1.4.5 (ACT 0va7u6): an image that is mostly text. Logos are exempt (a logotype is essential), and so is
    an inline SVG: its text is markup, which scales and can be selected (a canvas's text is pixels)."""
    text = _image_text(result)
    if (markup.graphic == "svg" or result.get("kind") != "text" or result.get("brand") or not text
            or len(solid_words(text)) < MIN_IMAGE_OF_TEXT_WORDS):
        return None
    name = (markup.name or "").strip()
    named = "" if markup.decorative or not name else f" (named {_quote(name)})"
    return Judgement(
        "image-of-text",
        f"Image of text{named}: real text styled with CSS is better (it can be resized, restyled, translated and "
        "searched). Unless this exact presentation is essential, put its text in the page; while it is an image, "
        "its alt should say the same text.",
        _evidence(result, "text"), text, "text")


def judge(markup: ImageMarkup, result: dict | None) -> list[Judgement]:
    """Every judgement on one image, in JUDGEMENTS order; [] without a usable pipeline result (an error, a
    withheld description of a photo, nothing read)."""
    if not isinstance(result, dict) or "error" in result:
        return []
    return [j for j in (informative_image_hidden(markup, result), name_contradicts_text(markup, result),
                        image_of_text(markup, result)) if j is not None]


__all__ = ["ACT", "JUDGEMENTS", "NEEDS_REVIEW", "WCAG", "ImageMarkup", "Judgement", "agrees", "content_words",
           "image_of_text", "informative_image_hidden", "judge", "name_contradicts_text", "tokens", "words_match"]
