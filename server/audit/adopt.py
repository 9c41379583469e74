"""The alt text an author can adopt: the describe pipeline's description without the listener's hedge.

The pipeline's ``alt`` is spoken to someone who cannot see the image, so it says that a machine made it and how
sure it is ("Appears to be: a dog on a beach.", "Might be: a cat.", "Appears to say: “Summer sale”", "Icon:
Search."). A site's author who pastes that into ``alt=`` publishes the hedge as if it were the image's content. What
they can adopt is the description itself ("A dog on a beach.", "A cat.", "Summer sale", "Search icon"), shown with
the number the pipeline chose its wording from, so they know how far to trust it:

========== ========================================= ======================================================
basis      the suggestion                            its number
========== ========================================= ======================================================
caption    the caption sentence                      the caption's calibrated confidence (raw_caption: the
                                                     model's own score, where no calibration head is fitted:
                                                     the wording is then always "Might be")
concept    the plain word, as a sentence ("A cat.")  the classifier's probability for that word
meaning    "Search icon"                             the meaning head's probability
brand      "GitHub logo"                             the meaning head's probability for the brand
chart_type "Bar chart: Sales by region"              the chart-type head's probability
text       the text read from the image, unquoted    none: it was read (OCR), not guessed
========== ========================================= ======================================================

Nothing is offered where the pipeline withheld its description, nor where all it can say is the kind of image
("Illustration."): that is not a text alternative. :func:`author_alt` works on a pipeline result (it makes the
report's ``suggested_alt``); :func:`adoptable` on a report's suggestion, of this version or an older one (the HTML,
CSV and SARIF writers use it, so all say the same).
"""
from __future__ import annotations

import re

BASES = ("caption", "raw_caption", "concept", "meaning", "brand", "chart_type", "text", "control_name")
BASIS_LABELS = {
    "caption": "caption confidence",
    "raw_caption": "uncalibrated caption score (without a calibration head every caption is worded as unsure)",
    "concept": "object classifier",
    "meaning": "icon meaning",
    "brand": "logo recognition",
    "chart_type": "chart type",
    "text": "text read from the image",
    "control_name": "icon meaning",
}
_HEDGE = re.compile(r"^\s*(Appears to be|Might be|Appears to say|Image of text|Screenshot|Chart|Illustration|"
                    r"Icon|Logo)\s*[:.]\s*", re.I)
_QUOTES = "“”\"„«»"


def _sentence(text: str) -> str:
    """First letter up, one closing full stop: "a dog on a beach" -> "A dog on a beach."."""
    text = " ".join(text.split()).strip()
    if not text:
        return ""
    text = text[:1].upper() + text[1:]
    return text if text[-1] in ".!?…" else text + "."


def unquote(text: str) -> str:
    """The text without the quotes the listener's wording put around it."""
    text = " ".join((text or "").split())
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text


def _p(value) -> float | None:
    try:
        return None if value is None else round(min(max(float(value), 0.0), 1.0), 4)
    except (TypeError, ValueError):
        return None


def _part(result: dict, key: str) -> dict:
    value = result.get(key)
    return value if isinstance(value, dict) else {}


def author_alt(result: dict) -> dict | None:
    """``{"text", "confidence", "basis"}`` for a pipeline result (``alt``, ``kind``, ``caption``, ``text``,
    ``confidence``, ``concepts``, ``meaning``, ``brand``, ``chart_type``), or None when there is nothing an author
    should adopt (withheld, or only the kind of image)."""
    alt = (result.get("alt") or "").strip()
    if not alt:
        return None
    kind = result.get("kind") or result.get("image_kind") or ""
    text = unquote(result.get("text") or "")
    brand, meaning, chart = _part(result, "brand"), _part(result, "meaning"), _part(result, "chart_type")
    if brand.get("name"):
        return {"text": f"{brand['name']} logo", "confidence": _p(brand.get("p")), "basis": "brand"}
    if meaning.get("label"):
        return {"text": f"{meaning['label']} icon", "confidence": _p(meaning.get("p")), "basis": "meaning"}
    if kind == "chart" and chart.get("label"):
        label = chart["label"]
        return {"text": f"{label}: {text}" if text else label, "confidence": _p(chart.get("p")),
                "basis": "chart_type"}
    caption = (result.get("caption") or "").strip()
    lead = re.sub(r"^\s*(Appears to be|Might be)\s*:\s*", "", alt, flags=re.I)
    if lead != alt:  # a caption or a concept was said
        said = lead.split(" Appears to say:", 1)[0].strip()
        concepts = result.get("concepts") or []
        first = concepts[0] if concepts and isinstance(concepts[0], dict) else {}
        raw = result.get("raw_confidence") is not None and result.get("confidence") == result.get("raw_confidence")
        if caption and said.casefold().rstrip(".") == caption.casefold().rstrip("."):
            out = {"text": _sentence(caption), "confidence": _p(result.get("confidence")),
                   "basis": "raw_caption" if raw else "caption"}
        elif first.get("word") and said.casefold().rstrip(".").endswith(" " + str(first["word"]).casefold()):
            out = {"text": _sentence(said), "confidence": _p(first.get("p")), "basis": "concept"}
        else:  # an older result without concepts: the words said, with the caption's number
            out = {"text": _sentence(said), "confidence": _p(result.get("confidence")), "basis": "caption"}
        if text:
            out["text"] += f" Text: {text}"
        return out
    if text:
        if kind == "screenshot":
            return {"text": f"Screenshot: {text}", "confidence": None, "basis": "text"}
        if kind == "chart":
            return {"text": f"Chart: {text}", "confidence": None, "basis": "text"}
        if kind == "logo":
            return {"text": f"{text} logo", "confidence": None, "basis": "text"}
        return {"text": text, "confidence": None, "basis": "text"}
    return None  # "Icon.", "Illustration.": the kind of image, not a text alternative


def adoptable(suggestion: dict | None) -> dict | None:
    """``{"text", "confidence", "basis"}`` an author can adopt for a report's suggestion, else None: a caption's
    ``suggested_alt`` (or, in a report from before it, the ``alt`` without its hedge), a judgement's, a control's
    name, ``""`` for a decorative image."""
    s = suggestion or {}
    kind = s.get("kind")
    if kind == "judgement":
        if not s.get("suggested_alt"):
            return None
        return {"text": s["suggested_alt"], "confidence": _p(s.get("suggested_confidence")),
                "basis": s.get("confidence_basis")}
    if kind == "name":
        return {"text": s["name"], "confidence": _p(s.get("confidence")), "basis": "control_name"}
    if kind == "decorative":
        return {"text": s.get("alt"), "confidence": None, "basis": None}
    if kind != "caption":
        return None
    if "suggested_alt" in s:
        if not s["suggested_alt"]:
            return None
        return {"text": s["suggested_alt"], "confidence": _p(s.get("suggested_confidence")),
                "basis": s.get("confidence_basis")}
    found = author_alt({**s, "kind": s.get("image_kind")})
    if found is None:  # a hand-made or older suggestion: its alt without the hedge
        bare = unquote(_HEDGE.sub("", s.get("alt") or ""))
        found = {"text": bare, "confidence": _p(s.get("confidence")), "basis": "caption"} if bare else None
    return found
