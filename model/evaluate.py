"""Evaluate a captioner on a dataset split: caption every image, score against its references. The captioner may be
an ensemble (``Captioner.load([a, b])``): the report then lists its members."""
from __future__ import annotations

import time

from tqdm import tqdm

from . import metrics
from .captioner import Captioner
from .chair import hallucinated
from .datasets import CaptionedImage
from .images import load_image


def caption_items(captioner: Captioner, items: list[CaptionedImage], beam_size: int = 3,
                  batch_size: int = 32, progress: bool = True) -> list[str]:
    search = captioner.search_config(beam_size)
    out: list[str] = []
    for s in tqdm(range(0, len(items), batch_size), desc="captioning", unit="batch", disable=not progress):
        images = [load_image(it.path) for it in items[s : s + batch_size]]  # the service's decoding
        out.extend(c.tokens for c in captioner.caption_features(captioner.encode(images), search))
    return out


def evaluate(captioner: Captioner, items: list[CaptionedImage], beam_size: int = 3, batch_size: int = 32,
             use_java: bool | None = None, progress: bool = True) -> dict:
    t0 = time.time()
    hyps = caption_items(captioner, items, beam_size, batch_size, progress)
    seconds = time.time() - t0
    scores = metrics.score({i: list(it.captions) for i, it in enumerate(items)}, dict(enumerate(hyps)), use_java)
    report = {
        "model": captioner.name, "version": captioner.version, "images": len(items), "beam_size": beam_size,
        "metrics": scores, "seconds": round(seconds, 1),
        "captions": [{"image": it.name, "caption": h, "hallucinated": hallucinated(h, list(it.captions))}
                     for it, h in zip(items, hyps)],
    }
    ensemble = getattr(captioner, "ensemble", None)
    if ensemble is not None:
        report["ensemble"] = [m["path"] for m in captioner.info.get("ensemble", [])]
        report["combine"] = ensemble.combine
    return report
