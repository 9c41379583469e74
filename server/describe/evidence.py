"""Everything the pipeline knows about one image before it decides what to say: the cacheable record.

The cache stores this, not the sentence: the decision and the wording are cheap and configurable, so a changed
threshold or prefix applies to cached images at once, while a changed model or pipeline (which changes the
evidence itself) changes the cache namespace.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .concepts import Concept
from .pixels import PixelStats


@dataclass
class Evidence:
    caption: str  # the captioner's sentence ("A dog runs on the beach.")
    raw_confidence: float  # geometric mean token probability
    confidence: float | None  # calibrated P(caption acceptable); None without fitted heads
    kind_probs: dict[str, float]  # kind -> probability; {} without fitted heads
    ood: float | None  # out-of-domain score; None without fitted heads
    ood_threshold: float | None
    concepts: list[Concept] = field(default_factory=list)
    kind_novelty: dict[str, float] = field(default_factory=dict)  # non-photo kind -> distance to its fitted examples
    kind_novelty_max: dict[str, float] = field(default_factory=dict)  # ... and the farthest a fitted example was
    meaning_probs: dict[str, float] = field(default_factory=dict)  # the meaning head's likeliest classes
    meaning_labels: dict[str, str] = field(default_factory=dict)  # ... and their words ("meaning:search": "Search")
    meaning_threshold: float | None = None  # the probability the head needs to be said ({}/None: no head)
    brand_threshold: float | None = None  # ... for a brand (None: meaning_threshold)
    chart_probs: dict[str, float] = field(default_factory=dict)  # the same for the chart-type head
    chart_labels: dict[str, str] = field(default_factory=dict)
    chart_threshold: float | None = None
    text_lines: list[str] = field(default_factory=list)  # OCR, confident words only
    ocr: str = "skipped"  # "read", "skipped" (text unlikely), "unavailable" (no Tesseract)
    title_bar: str = ""  # a screenshot's window title ("Exercise — KBruch"), read from its top strip on its own
    pixels: PixelStats | None = None

    @property
    def kind(self) -> str:
        return max(self.kind_probs, key=self.kind_probs.get) if self.kind_probs else "photo"

    @property
    def out_of_domain(self) -> bool:
        return self.ood is not None and self.ood_threshold is not None and self.ood > self.ood_threshold

    def familiar(self, kind: str) -> bool:
        """The image is as close to the fitted examples of ``kind`` as those were to each other (True when the
        heads have no such examples: nothing to check against)."""
        if kind not in self.kind_novelty or kind not in self.kind_novelty_max:
            return True
        return self.kind_novelty[kind] <= self.kind_novelty_max[kind]

    @property
    def text(self) -> str:
        return " ".join(self.text_lines)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["concepts"] = [c.to_dict() for c in self.concepts]
        d["pixels"] = self.pixels.to_dict() if self.pixels else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Evidence":
        d = dict(d)
        d["concepts"] = [Concept(c["word"], c["label"], c["p"]) for c in d.get("concepts", [])]
        d["pixels"] = PixelStats.from_dict(d["pixels"]) if d.get("pixels") else None
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
