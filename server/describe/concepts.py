"""What the encoder's ImageNet classifier thinks an image is, in words a listener understands.

The raw labels mislead on anything but photos (a save icon scores "whistle"), so they serve three purposes, each
measured: type cues (probability mass on screens and documents says "screenshot" or "text" better than any
caption), a check on the caption (a caption that names none of what a confident classifier sees is less
trustworthy), and, shown to users, only their plain word ("Egyptian cat" → "cat", from WordNet; see
``scripts/build_concepts.py``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

# ImageNet classes that are type cues rather than subjects (torchvision's class indices).
CUES = {
    "screen": (916, 664, 782, 851, 527, 620, 681, 590, 605, 487, 508, 878),  # web site, monitor, screen, ...
    "document": (922, 918, 921, 549, 446, 692, 919, 781, 769, 798, 478),  # menu, crossword, book jacket, ...
    "drawing": (917, 611, 750, 815),  # comic book, jigsaw puzzle, quilt, spider web
}


@dataclass(frozen=True)
class Concept:
    word: str  # plain word ("cat")
    label: str  # the ImageNet label it came from ("Egyptian cat")
    p: float  # the classifier's probability, summed over classes sharing the word

    def to_dict(self) -> dict:
        return {"word": self.word, "label": self.label, "p": round(self.p, 4)}


@lru_cache(maxsize=1)
def _table() -> tuple[list[str], list[str]]:
    data = json.loads((Path(__file__).with_name("concepts.json")).read_text(encoding="utf-8"))
    return [c[0] for c in data["classes"]], [c[2] for c in data["classes"]]


def cue_masses(probs: torch.Tensor) -> dict[str, float] | list[dict[str, float]]:
    """Probability mass on each cue group, for one image's [1000] probabilities (or a list, for a [B, 1000]
    batch: one tensor operation per group for the whole batch)."""
    if probs.ndim == 1:
        return cue_masses(probs[None])[0]
    masses = {name: probs[:, list(idx)].sum(1).tolist() for name, idx in CUES.items()}
    return [{name: m[i] for name, m in masses.items()} for i in range(len(probs))]


def top_concepts(probs: torch.Tensor, k: int = 3, min_p: float = 0.05) -> list[Concept] | list[list[Concept]]:
    """The ``k`` most probable plain words (probabilities of classes with the same word added up), for one
    image's [1000] probabilities (or a list, for a [B, 1000] batch)."""
    if probs.ndim == 1:
        return top_concepts(probs[None], k, min_p)[0]
    labels, words = _table()
    values, idx = probs.topk(min(25, probs.shape[1]), dim=1)
    out = []
    for row_values, row_idx in zip(values.tolist(), idx.tolist()):
        by_word: dict[str, list] = {}
        for p, i in zip(row_values, row_idx):
            entry = by_word.setdefault(words[i], [0.0, labels[i]])
            entry[0] += p
        ranked = sorted(by_word.items(), key=lambda kv: -kv[1][0])
        out.append([Concept(w, label, p) for w, (p, label) in ranked[:k] if p >= min_p])
    return out


def stem(word: str) -> str:
    """Plural-insensitive form of a word, as captions and labels are compared (also by the honesty evaluation)."""
    return re.sub(r"(es|s)$", "", word) if len(word) > 3 else word


def agreement(concepts: list[Concept], caption_words: str) -> float:
    """Probability mass of the concepts the caption mentions (plural-insensitive): near 0 when a confident
    classifier sees something the caption never names."""
    said = {stem(w) for w in re.findall(r"[a-z]+", caption_words.lower())}
    return float(sum(c.p for c in concepts if any(stem(w) in said for w in c.word.split())))
