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

Without OCR text, a non-photo is still named by its kind ("Screenshot."): true, if less useful. Thresholds are
``Policy`` fields, configurable per deployment; the defaults come from the measurements in the model card.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .evidence import Evidence

NON_PHOTO = ("text", "screenshot", "chart", "icon", "logo", "illustration")


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


@dataclass(frozen=True)
class Decision:
    kind: str  # the kind the result reports: one of heads.KINDS, or "unknown"
    say_caption: bool
    sure: bool  # the caption is above hedge_below
    text: str  # the (trimmed) text to quote, "" for none
    named: bool  # the kind is said
    reason: str | None  # why nothing is said (alt null), else None
    concept: str = ""  # a plain word said instead of the caption ("cat")


def trim(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(" ,;:.-") + " …"


def _title_like(line: str) -> bool:
    return sum(len(re.sub(r"[^A-Za-z]", "", w)) >= 3 for w in line.split()) >= 2


def decide(ev: Evidence, policy: Policy) -> Decision:
    words = len(ev.text.split())
    text = trim(ev.text, policy.max_text_chars) if words >= policy.min_text_words else ""
    probs = ev.kind_probs or {"photo": 1.0}
    p_photo = probs.get("photo", 0.0)
    best = max(NON_PHOTO, key=lambda k: probs.get(k, 0.0))
    if p_photo < policy.photo_min:
        group = next((g for g in policy.kind_groups if best in g), (best,))
        p_best = sum(probs.get(k, 0.0) for k in group)
        if p_best >= policy.kind_min and p_best > p_photo and ev.familiar(best):  # the likeliest kind only
            if best == "chart" and text:  # a chart is named by its title: its first line of two real words or more
                title = next((line for line in ev.text_lines if _title_like(line)), "")
                text = trim(title, policy.max_text_chars)
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
