"""The image judgements (:mod:`server.audit.judge`) in the audit: what each image's markup says
(:class:`rules.ImageContext`, collected by the crawl with suggestions on) against the describe pipeline's evidence
for it (kept by :class:`suggest.Suggester` beside each image's suggestion), as report findings.

Each judgement is a finding of its own (rule ``image-informative-hidden``, ``image-name-contradicts-text`` or
``image-of-text``, severity ``needs review``, never a WCAG failure for ``--fail-on``), with its ``act`` rule, the
``evidence`` it rests on and a suggestion of kind ``judgement`` (the text to put in the page, and what it comes
from). One case is not: an image hidden from screen readers that is the only content of a button or link without
another name is what the markup rules' ``button-name``/``link-name`` finding is about already, so its judgement
(what the icon is, a name for it) is attached to that finding (``judgement`` and ``evidence``) instead of being a
second finding for the same fault. The same goes for an unnamed graphic (a canvas or a role-less inline svg, rule
``graphic-unnamed``): its pixels judged informative (ACT e88epe) are that finding's ``judgement``, and the text
they give is its suggestion.

The judgement findings are made after the images are described, from the crawl's image contexts on disk; they are
held in memory, grouped by page (a judgement fires on a small share of images), and the report puts each page's
after that page's markup findings.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from .judge import ImageMarkup, Judgement, judge
from .rules import CONTROL_RULES, GRAPHIC_RULE

# The fields of a pipeline result (server.describe.pipeline.RESULT_FIELDS) the judgements read.
JUDGE_FIELDS = ("kind", "text", "brand", "meaning", "chart_type", "control_name")
SUGGESTION_NOTES = {
    "image-informative-hidden": "From what the image shows: check it against the image. If the page says the same "
                                'right beside the image, alt="" is right.',
    "image-name-contradicts-text": "The text read from the image: check which is right, the image or its name.",
    "image-of-text": "The text read from the image. Real text styled with CSS is better than an image of text; "
                     "while it is an image, its alt should say the same text.",
}
GRAPHIC_NOTE = ('From what the graphic shows: check it against the graphic, then give it role="img" and this as '
                "its aria-label (an svg: or a <title> child). If the page says the same right beside it, "
                'aria-hidden="true" is right.')


def judge_evidence(result: dict | None) -> dict | None:
    """What the judgements need of a pipeline result, or None where they have nothing to judge (an error; a photo,
    which is never judged)."""
    if not isinstance(result, dict) or "error" in result:
        return None
    kind = str(result.get("kind") or "unknown")
    if kind == "photo":
        return None
    return {**{k: result[k] for k in JUDGE_FIELDS if result.get(k) is not None}, "kind": kind}


def _confidence(j: Judgement) -> float | None:
    """The head's probability behind a brand's or an icon's suggested name; None for text read by OCR."""
    if j.basis not in ("brand", "control_name"):
        return None
    for key in (("brand",) if j.basis == "brand" else ("meaning", "brand")):
        part = j.evidence.get(key)
        if isinstance(part, dict) and part.get("p") is not None:
            try:
                return round(min(max(float(part["p"]), 0.0), 1.0), 4)
            except (TypeError, ValueError):
                return None
    return None


def judgement_suggestion(j: Judgement, model: str) -> dict:
    """A judgement finding's suggestion: ``suggested_alt`` (None where the evidence gives no text) and its
    basis."""
    return {"kind": "judgement", "suggested_alt": j.suggestion, "suggested_confidence": _confidence(j),
            "confidence_basis": j.basis, "message": SUGGESTION_NOTES[j.rule],
            "image_kind": str(j.evidence.get("kind") or "unknown"), "model": model}


def judgement_finding(context: dict, j: Judgement, model: str) -> dict:
    """A report finding (without its id) for a judgement on the image a context describes (a graphic's: with
    ``graphic``, its ``image_url`` the graphic's reference, not a file)."""
    graphic = {"graphic": context["graphic"]} if context.get("graphic") else {}
    return {"page_url": context["page_url"], "rule": j.rule, "wcag": j.wcag, "severity": j.severity,
            "selector": context["selector"], "snippet": context["snippet"], "image_url": context["image_url"],
            "message": j.message, "current_alt": context["name"], "decorative_candidate": False, **graphic,
            "act": j.act, "evidence": j.evidence, "suggestion": judgement_suggestion(j, model)}


def _markup(context: dict) -> ImageMarkup:
    return ImageMarkup(context["name"], bool(context["decorative"]), context["control"],
                       bool(context["control_named"]), context["nearby_text"] or "", context.get("graphic"))


def _attachment(j: Judgement) -> dict:
    return {"evidence": j.evidence,
            "judgement": {"rule": j.rule, "act": j.act, "wcag": j.wcag, "message": j.message,
                          "suggested_alt": j.suggestion, "suggested_confidence": _confidence(j),
                          "confidence_basis": j.basis}}


class Judgements:
    """An audit's judgements: ``evidence(image_url)`` is :func:`judge_evidence` of the image's pipeline result
    (None: not described, failed, a photo); ``model`` the version the suggestions name."""

    def __init__(self, evidence: Callable[[str], dict | None], model: str):
        self.evidence, self.model = evidence, model
        self._by_page: dict[str, list[dict]] = {}
        self._graphics: dict[tuple[str, str], dict] = {}  # (page, selector) -> what an unnamed graphic's finding gets
        self.count = 0

    def judge_images(self, contexts: Iterable[dict]) -> Judgements:
        """Judge each image context (one pass; the crawl's store is streamed)."""
        for context in contexts:
            evidence = self.evidence(context["image_url"])
            if evidence is None:
                continue
            for j in judge(_markup(context), evidence):
                if j.rule == "image-informative-hidden" and context["control"] and not context["control_named"]:
                    continue  # the control's own finding says so, and carries it (attached)
                if j.rule == "image-informative-hidden" and context.get("graphic"):
                    extra = _attachment(j)
                    if j.suggestion:
                        extra["suggestion"] = {**judgement_suggestion(j, self.model), "message": GRAPHIC_NOTE}
                    self._graphics[(context["page_url"], context["selector"])] = extra
                    continue  # the graphic's own finding (graphic-unnamed) carries it
                self._by_page.setdefault(context["page_url"], []).append(judgement_finding(context, j, self.model))
                self.count += 1
        return self

    def page(self, page_url: str) -> list[dict]:
        """The judgement findings of one page: its images shown to screen readers in document order, then those
        hidden from them."""
        return self._by_page.get(page_url, [])

    def pages(self) -> Iterator[str]:
        return iter(self._by_page)

    def attached(self, finding: dict) -> dict:
        """For a button-name or link-name finding whose only content is an image marked decorative: the judgement
        that the image carries information (``judgement``, ``evidence``), else nothing. For an unnamed graphic's
        finding, that judgement and, where it gives text, the ``suggestion`` that replaces its description."""
        if finding.get("rule") == GRAPHIC_RULE:
            return dict(self._graphics.get((finding["page_url"], finding["selector"]), {}))
        if finding.get("rule") not in CONTROL_RULES or finding.get("icon") != "img-decorative" \
                or not finding.get("image_url"):
            return {}
        evidence = self.evidence(finding["image_url"])
        if evidence is None:
            return {}
        control = "button" if finding["rule"] == "button-name" else "link"
        for j in judge(ImageMarkup(None, decorative=True, control=control), evidence):
            if j.rule == "image-informative-hidden":
                return _attachment(j)
        return {}

    def __len__(self) -> int:
        return self.count


__all__ = ["JUDGE_FIELDS", "SUGGESTION_NOTES", "Judgements", "judge_evidence", "judgement_finding",
           "judgement_suggestion"]
