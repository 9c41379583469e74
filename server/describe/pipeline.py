"""The describe pipeline: image in, structured description out. Every surface (service, CLI, audit) calls it.

Stages, and where each runs in the service:

* ``look`` (request thread): pixel statistics of the decoded image, well under a millisecond;
* ``run_model`` (the batching worker, the only code that touches the network): one encoder pass gives the caption,
  the pooled features, the ImageNet probabilities, the out-of-domain score and the rest of what the evidence takes
  from the model alone (``Signals``), each made once for the whole batch;
* ``gather`` (request thread): kind, calibrated confidence, and OCR only where text is likely;
* ``decide`` (anywhere, also on a cache hit): decision and wording, from the evidence alone.

``describe(images)`` chains them for callers that hold a batch in one thread (the CLI, the audit).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import ocr as ocr_module
from .concepts import Concept, agreement, cue_masses, top_concepts
from .decision import ICON_LIKE, Policy, decide, likeliest_non_photo
from .evidence import Evidence
from .heads import KINDS, NAMED_HEADS, Heads, HeadsError, calibration_features, heads_for, heads_path, kind_features
from .meaning_head import grid_summary
from .pixels import PixelStats, pixel_stats
from .wording import Wording, phrase

log = logging.getLogger(__name__)

# Bump when the evidence changes for the same image and model (new features, heads, OCR rules): it is part of the
# cache namespace, so a new pipeline never serves an old one's answers.
PIPELINE_VERSION = "describe-11"  # the decision and wording are not in it: they apply to cached evidence
OCR_BELOW_P_PHOTO = 0.8  # OCR runs unless the image is this surely a photo
# The fields of every result, in this order (the service adds cached, model and elapsed_ms; the CLI, input).
RESULT_FIELDS = ("alt", "kind", "text", "caption", "confidence", "raw_confidence", "concepts", "hedged", "withheld",
                 "reason", "out_of_domain", "ocr", "meaning", "brand", "chart_type", "control_name")


@dataclass
class Signals:
    """What the evidence takes from the model's outputs alone (no pixels, no caption), made for a whole batch in
    the model stage: a handful of tensor operations per batch instead of per image on the request threads (whose CPU
    time, under load, competes with the model's)."""

    concepts: list[Concept]
    top_p: float | None = None  # the rest: None without an ImageNet head or fitted heads
    entropy: float | None = None
    cues: dict[str, float] | None = None
    projected: np.ndarray | None = None  # [n_pca] of the kind classifier's inputs
    taps: np.ndarray | None = None  # [T] the tapped blocks on their directions (None: the heads read no taps)
    kind_novelty: dict[str, float] = field(default_factory=dict)
    meaning: dict[str, float] = field(default_factory=dict)  # the meaning head's likeliest classes ({}: no head)
    chart: dict[str, float] = field(default_factory=dict)  # the chart-type head's ({}: no head)


def model_signals(probs: torch.Tensor | None, pooled: np.ndarray, heads: Heads | None,
                  grid: torch.Tensor | None = None, taps: list[np.ndarray] | None = None) -> list[Signals]:
    """The Signals of a batch: ``probs`` [B, 1000] (None without an ImageNet head), ``pooled`` [B, C], ``grid``
    the pretrained grid [B, S*S, C] the meaning head reads (None: no meanings), ``taps`` the mean maps [B, c] of
    the blocks the kind head reads (``Heads.tap_blocks``)."""
    if probs is None:
        return [Signals([]) for _ in range(len(pooled))]
    concepts = top_concepts(probs)
    if heads is None:
        return [Signals(c) for c in concepts]
    top_p = probs.max(1).values.tolist()
    entropy = (-(probs * probs.clamp_min(1e-12).log()).sum(1)).tolist()
    projected, novelty = heads.project(pooled), heads.kind_novelty(pooled)
    tapped = heads.project_taps(taps or []) if heads.kind_taps else [None] * len(pooled)
    page_heads = {name: getattr(heads, name) for name in NAMED_HEADS  # a head that reads glyphs runs in gather
                  if getattr(heads, name) is not None and not getattr(heads, name).reads_glyphs}
    grid9 = grid_summary(grid).numpy() if grid is not None and page_heads else None
    named = {name: (page_heads[name].top(pooled, grid9) if name in page_heads and grid9 is not None
                    else [{}] * len(pooled)) for name in NAMED_HEADS}
    return [Signals(concepts[i], top_p[i], entropy[i], cues, projected[i], tapped[i],
                    {k: float(v[i]) for k, v in novelty.items()}, named["meaning"][i], named["chart"][i])
            for i, cues in enumerate(cue_masses(probs))]


@dataclass
class ModelOutput:
    caption: str
    words: str  # lower-case tokens of the caption
    raw_confidence: float
    pooled: np.ndarray  # [C]
    probs: torch.Tensor | None  # [1000] ImageNet probabilities, None when the encoder has no head
    ood: float | None = None  # out-of-domain score, None without fitted heads
    signals: Signals | None = None  # made with the batch by run_model; None: gather makes them for this image
    taps: tuple[np.ndarray, ...] = ()  # the mean maps [c] of the blocks the describer taps (Describer.taps)


class Describer:
    def __init__(self, captioner, heads: Heads | None = None, policy: Policy | None = None,
                 wording: Wording | None = None, ocr: "ocr_module.Ocr | None" = None, beam_size: int = 3,
                 taps: tuple[int, ...] | None = None):
        from model.encoders import imagenet_head

        self.captioner, self.heads, self.ocr = captioner, heads, ocr
        # the encoder blocks whose mean maps run_model keeps: the kind head's (None), or those a fit asks for
        self.taps = tuple(heads.tap_blocks if heads is not None else ()) if taps is None else tuple(taps)
        self.policy, self.wording = policy or Policy(), wording or Wording()
        self.beam_size = beam_size
        self.search = captioner.search_config(beam_size)
        head = imagenet_head(captioner.model.cfg.encoder)
        self.imagenet = head.to(captioner.device) if head is not None else None
        # what the model stage's outputs depend on (a model process checks it loaded the same), then OCR
        self.model_namespace = ":".join([str(captioner.version), f"beam{beam_size}", PIPELINE_VERSION,
                                         heads.digest if heads else "noheads"])
        self.namespace = self.model_namespace + (":ocr" if ocr else ":noocr")

    @classmethod
    def load(cls, checkpoint: str | Path | None = None, device: str | None = None, beam_size: int = 3,
             policy: Policy | None = None, wording: Wording | None = None, use_ocr: bool = True) -> "Describer":
        """The captioner, its fitted heads (``<checkpoint>.honesty.safetensors``) and Tesseract when installed.
        A checkpoint without heads still describes, warned about: no kinds, no out-of-domain check, raw
        confidence."""
        from model import Captioner, default_checkpoint_path

        path = Path(checkpoint) if checkpoint else default_checkpoint_path()
        captioner = Captioner.load(path, device=device)
        heads = heads_for(path)
        if heads is None:
            log.warning("%s has no fitted honesty heads (%s): no kind, out-of-domain or calibrated confidence; "
                        "fit them with scripts/fit_honesty.py", path, heads_path(path).name)
        ocr = ocr_module.Ocr() if use_ocr and ocr_module.available() else None
        if use_ocr and ocr is None:
            log.warning("Tesseract is not installed: images are described without reading their text")
        return cls(captioner, heads, policy, wording, ocr, beam_size)

    @property
    def ocr_available(self) -> bool:
        return self.ocr is not None

    # -- stages ------------------------------------------------------------------------------------------------

    def look(self, image: Image.Image) -> PixelStats:
        return pixel_stats(image)

    def prepare(self, image: Image.Image) -> torch.Tensor:
        """The encoder's input for one image (resize, normalise): for the caller's thread, not the model's."""
        return self.captioner.prepare(image)

    @torch.no_grad()
    def run_model(self, images: list, deliver: Callable[[int, ModelOutput], None] | None = None
                  ) -> list[ModelOutput]:
        """The model stage for a batch of PIL images or ``prepare``d tensors. ``deliver(i, output)`` gets each
        image's output as soon as its caption is done, before the batch's longer captions are: a batching service
        answers that client sooner, and its next image is ready by the time the batch ends."""
        feats, pooled, grid, *maps = self.captioner.encode_and_pool(images, with_grid=True, taps=self.taps)
        means = [m.mean(1).numpy() for m in maps[0]] if maps else []
        probs = None
        if self.imagenet is not None:
            w = self.imagenet.weight
            probs = torch.softmax(self.imagenet(pooled.to(w.device, w.dtype)).float(), -1).cpu()
        pooled_np = pooled.numpy()
        oods = self.heads.ood(pooled_np) if self.heads is not None else [None] * len(images)  # one product
        signals = model_signals(probs, pooled_np, self.heads, grid, means)
        outputs: list[ModelOutput | None] = [None] * len(images)

        def done(i: int, c) -> None:
            outputs[i] = ModelOutput(c.text, c.tokens, float(c.confidence), pooled_np[i],
                                     None if probs is None else probs[i], None if oods[i] is None else float(oods[i]),
                                     signals[i], tuple(m[i] for m in means))
            if deliver is not None:
                deliver(i, outputs[i])

        self.captioner.caption_features(feats, self.search, on_caption=done)
        return outputs

    def gather(self, pixels: PixelStats, out: ModelOutput, image: Image.Image | None) -> Evidence:
        """The evidence for one image. ``image`` is needed for OCR; None skips it."""
        h = self.heads
        s = out.signals or model_signals(None if out.probs is None else out.probs[None], out.pooled[None], h,
                                         taps=[m[None] for m in out.taps])[0]
        concepts = s.concepts
        ev = Evidence(caption=out.caption, raw_confidence=round(out.raw_confidence, 4), confidence=None,
                      kind_probs={}, ood=None, ood_threshold=None, concepts=concepts, pixels=pixels)
        if h is not None and s.top_p is not None:
            ood = out.ood if out.ood is not None else float(h.ood(out.pooled[None])[0])
            feats = kind_features(pixels, s.cues, s.top_p, s.entropy, ood, s.projected, int(h.meta.get("n_pca", 0)),
                                  s.taps)
            kp = h.kind_probs(feats[None])[0]
            ev.kind_probs = {k: round(float(p), 4) for k, p in zip(KINDS, kp)}
            ev.ood, ev.ood_threshold = round(ood, 4), h.meta.get("ood_threshold")
            ev.kind_novelty = {k: round(v, 4) for k, v in s.kind_novelty.items()}
            ev.kind_novelty_max = dict(h.meta.get("kind_novelty_max", {}))
            cal = calibration_features(out.raw_confidence, len(out.words.split()), agreement(concepts, out.words),
                                       s.top_p, ood, ev.kind_probs["photo"])
            ev.confidence = round(float(h.acceptable(cal[None])[0]), 4)
            for name in NAMED_HEADS:  # ev.meaning_probs, ev.meaning_labels, ev.meaning_threshold; chart_...
                head, top = getattr(h, name), getattr(s, name)
                if head is not None and head.reads_glyphs:
                    top = self.glyph_top(head, image, ev.kind_probs)
                if head is not None and top:
                    setattr(ev, f"{name}_probs", dict(top))
                    setattr(ev, f"{name}_labels", {k: head.titles[k] for k in top if k in head.titles})
                    setattr(ev, f"{name}_threshold", head.threshold)
            if h.meaning is not None and ev.meaning_probs:
                ev.brand_threshold = h.meaning.brand_threshold
        if self.ocr is None:
            ev.ocr = "unavailable"
        elif image is not None and (ev.kind_probs or {"photo": 1.0}).get("photo", 0) < OCR_BELOW_P_PHOTO:
            read = self.ocr.read(image)
            ev.ocr, ev.text_lines = "read", read.lines
            if likeliest_non_photo(ev.kind_probs) == "screenshot":
                ev.title_bar = self.ocr.read_title_bar(image)  # one more Tesseract call, for screenshots only
        return ev

    def glyph_top(self, head, image: Image.Image | None, kind_probs: dict[str, float]) -> dict[str, float]:
        """The likeliest classes of a head that reads glyphs, for an image the kind head takes for an icon, a logo
        or a drawing rather than a photo ({} otherwise): one more encoder pass, for those images only, so a photo
        costs what it did."""
        if image is None or sum(kind_probs.get(k, 0.0) for k in ICON_LIKE) <= kind_probs.get("photo", 0.0):
            return {}
        return head.top_glyphs(self.captioner, [image])[0]

    def decide(self, ev: Evidence, markup: dict[str, str] | None = None) -> dict:
        """The result every surface shows (``alt`` is what goes into the page; None: say nothing). ``markup``: what
        the page's code calls the image, when it is a control's icon (``markup.check_markup``)."""
        return result(ev, self.policy, self.wording, markup)

    def describe(self, images: list[Image.Image], batch_size: int = 16) -> list[dict]:
        """All stages for a batch held by one caller: one result per image, in order."""
        return [self.decide(ev) for ev in self.evidence(images, batch_size)]

    def evidence(self, images: list[Image.Image], batch_size: int = 16) -> list[Evidence]:
        """The evidence for a batch; OCR (a Tesseract process per image) runs on one thread per core."""
        out = []
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for i in range(0, len(images), batch_size):
                chunk = images[i:i + batch_size]
                outputs = self.run_model(chunk)
                out.extend(pool.map(lambda pair: self.gather(self.look(pair[0]), pair[1], pair[0]),
                                    zip(chunk, outputs)))
        return out


def result(ev: Evidence, policy: Policy, wording: Wording, markup: dict[str, str] | None = None) -> dict:
    """The result for one image's evidence: what ``Describer.decide`` returns, without a model (replays)."""
    d = decide(ev, policy, markup)
    alt = phrase(d, ev.caption, wording)
    return {
        "alt": alt,
        "kind": d.kind,
        "text": d.text or None,
        "caption": ev.caption,
        "confidence": ev.confidence if ev.confidence is not None else ev.raw_confidence,
        "raw_confidence": ev.raw_confidence,
        "concepts": [c.to_dict() for c in ev.concepts],
        "hedged": (d.say_caption and not d.sure) or bool(d.concept),
        "withheld": alt is None,
        "reason": d.reason if alt is None else None,
        "out_of_domain": ev.out_of_domain,
        "ocr": ev.ocr,
        "meaning": ({"id": d.meaning.partition(":")[2], "label": d.label, "p": round(d.p_meaning, 4),
                     "source": d.source} if d.meaning and not d.brand else None),
        "brand": ({"id": d.meaning.partition(":")[2], "name": d.label, "p": round(d.p_meaning, 4),
                   "source": d.source} if d.brand else None),
        "chart_type": ({"id": d.chart_type.partition(":")[2], "label": d.chart_label, "p": round(d.p_chart, 4)}
                       if d.chart_type else None),
        "control_name": d.control_name or None,
    }


__all__ = ["Describer", "Evidence", "HeadsError", "ModelOutput", "PIPELINE_VERSION", "Policy", "Signals", "Wording",
           "model_signals", "result"]
