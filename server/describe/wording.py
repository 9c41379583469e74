"""Every sentence the product says about an image, in one table (configurable per deployment).

The wording follows what screen-reader users already know from Chrome's image descriptions ("Appears to be: …",
"Appears to say: …") and Facebook's automatic alt text: it says the description is machine-made and how sure it
is, so no surface needs to add a prefix of its own, and none should.
"""
from __future__ import annotations

from dataclasses import dataclass

from .decision import Decision


@dataclass(frozen=True)
class Wording:
    caption_sure: str = "Appears to be: {caption}"
    caption_unsure: str = "Might be: {caption}"
    says: str = "Appears to say: “{text}”"
    kind_names: tuple[tuple[str, str], ...] = (
        ("text", "Image of text"), ("screenshot", "Screenshot"), ("chart", "Chart"), ("icon", "Icon"),
        ("logo", "Logo"), ("illustration", "Illustration"))
    kind_with_text: str = "{kind}. {says}"
    chart_with_title: str = "Chart: “{text}”"
    typed_chart_with_title: str = "{chart}: “{text}”"
    screenshot_with_title: str = "Screenshot: “{text}”"
    icon_meaning: str = "Icon: {label}."  # "Icon: Search."
    brand: str = "Logo: {label}."  # "Logo: GitHub."
    logo_with_text: str = "Logo: “{text}”"

    def kind_name(self, kind: str) -> str:
        return dict(self.kind_names).get(kind, kind.capitalize())


def _sentence_start_lower(caption: str) -> str:
    words = caption.split(" ", 1)
    first = words[0]
    return caption if first.isupper() and len(first) > 1 else caption[:1].lower() + caption[1:]


def with_article(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def phrase(d: Decision, caption: str, w: Wording) -> str | None:
    """The alt text for a decision, or None when nothing reliable can be said."""
    says = w.says.format(text=d.text) if d.text else ""
    if d.say_caption or d.concept:
        said = _sentence_start_lower(caption) if d.say_caption else with_article(d.concept) + "."
        text = (w.caption_sure if d.say_caption and d.sure else w.caption_unsure).format(caption=said)
        return f"{text} {says}".strip() if says else text
    if d.named:
        if d.label:
            return (w.brand if d.brand else w.icon_meaning).format(label=d.label)
        if d.kind == "text":
            return says or w.kind_name("text") + "."
        if d.kind == "chart" and d.chart_label:  # "Bar chart: “Sales by region”", "Line chart."
            return w.typed_chart_with_title.format(chart=d.chart_label, text=d.text) if d.text else d.chart_label + "."
        if d.kind == "chart" and d.text:
            return w.chart_with_title.format(text=d.text)
        if d.kind == "screenshot" and d.titled:
            return w.screenshot_with_title.format(text=d.text)
        if d.kind == "logo" and d.text:
            return w.logo_with_text.format(text=d.text)
        name = w.kind_name(d.kind)
        return w.kind_with_text.format(kind=name, says=says) if says else name + "."
    return says or None


REASONS = {
    "out_of_domain": "it is unlike the photos the captioner learned from",
    "low_confidence": "the captioner is not sure enough",
    "uncertain_kind": "it is unclear what kind of image this is",
    "blank": "it shows nothing (one colour, transparent, or a placeholder)",
}


def reason_message(reason: str | None) -> str:
    """Why nothing is said, for people (CLI lines, report notes, the extension's spoken answer)."""
    return "No description available" + (f": {REASONS[reason]}." if reason in REASONS else ".")
