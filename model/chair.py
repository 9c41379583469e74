"""CHAIR (Rohrbach et al. 2018): how often captions name COCO objects that are not there.

A caption's object mentions are the words (and two-word names) of COCO's 80 categories in
``model/chair_synonyms.py``, plurals included. A mention is hallucinated when none of the image's references names
its category. Unlike the paper, which also takes the ground truth from COCO's segmentation labels, the truth here is
the references alone (Flickr8k has no object labels), so an object that is in the picture but in no reference counts
as hallucinated: CHAIR here is an upper bound of the paper's.

    CHAIR_i = hallucinated mentions / all object mentions
    CHAIR_s = captions with at least one hallucinated mention / all captions

Every mention counts ("a pizza on a table with a pizza" mentions pizza twice), as in the paper's code.
"""
from __future__ import annotations

import re
from functools import lru_cache

from .chair_synonyms import IRREGULAR_PLURALS, PHRASES, SYNONYMS

_WORD = re.compile(r"[a-z]+")


def plural(word: str) -> str:
    """English plural of a (lower-case) noun, good enough for the synonym list."""
    if word in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[word]
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


@lru_cache(maxsize=1)
def _table() -> tuple[dict[tuple[str, ...], str | None], int]:
    """Word sequences (singular and plural) -> category, or None for a phrase that names no category."""
    table: dict[tuple[str, ...], str | None] = {}

    def add(phrase: str, category: str | None) -> None:
        words = phrase.split()
        for form in (words, words[:-1] + [plural(words[-1])]):
            table.setdefault(tuple(form), category)  # the first meaning wins (a singular over a derived plural)

    for category, names in SYNONYMS.items():
        for name in names:
            add(name, category)
    for phrase, category in PHRASES.items():
        add(phrase, category)
    return table, max(map(len, table))


def mentions(caption: str) -> list[tuple[str, str]]:
    """The COCO objects a caption names, in order: (the words used, the category), longest names first."""
    table, longest = _table()
    words = _WORD.findall(caption.lower())
    out, i = [], 0
    while i < len(words):
        for n in range(min(longest, len(words) - i), 0, -1):
            key = tuple(words[i : i + n])
            if key in table:
                if table[key] is not None:
                    out.append((" ".join(key), table[key]))
                i += n
                break
        else:
            i += 1
    return out


def hallucinated(caption: str, references: list[str]) -> list[str]:
    """The object words of ``caption`` whose category no reference names."""
    truth = {c for ref in references for _, c in mentions(ref)}
    return [w for w, c in mentions(caption) if c not in truth]


def chair(refs: dict, hyps: dict) -> dict:
    """CHAIR_i and CHAIR_s (x100) of ``hyps[id] = caption`` against ``refs[id] = [captions]``, with the counts."""
    said = wrong = bad = 0
    for k, hyp in hyps.items():
        said += len(mentions(hyp))
        n = len(hallucinated(hyp, refs[k]))
        wrong += n
        bad += n > 0
    return {
        "CHAIR_i": round(100 * wrong / said, 2) if said else 0.0,
        "CHAIR_s": round(100 * bad / len(hyps), 2) if hyps else 0.0,
        "object_mentions": said, "hallucinated_mentions": wrong, "captions_with_hallucination": bad,
    }
