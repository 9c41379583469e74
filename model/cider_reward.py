"""CIDEr-D as a training reward: pycocoevalcap's formula, fast enough to score hundreds of samples per step.

pycocoevalcap takes document frequencies from whatever references it is handed and re-cooks every reference on
every call. Self-critical training scores hundreds of captions per step against the same images again and again, so here
(as in ruotianluo's self-critical.pytorch ``CiderD``, "corpus" mode) the document frequencies are counted once from
a fixed reference corpus (the training references) and each image's reference vectors are built once and kept.

The formula is pycocoevalcap's CIDEr-D exactly (tests/test_scst.py compares the two): 1- to 4-grams, tf-idf
weights tf * (log N - log max(1, df)), a cosine per n-gram order with clipping (min(hyp, ref) * ref), a Gaussian
length penalty with sigma 6 (on pycocoevalcap's length, the number of bigrams), the mean over orders and over
references, times 10.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence

Ngram = tuple[str, ...]


def ngram_counts(words: Sequence[str], n: int = 4) -> dict[Ngram, int]:
    """Counts of the 1..n-grams of ``words``, in the order pycocoevalcap's ``precook`` meets them."""
    counts: dict[Ngram, int] = {}
    words = tuple(words)
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            g = words[i : i + k]
            counts[g] = counts.get(g, 0) + 1
    return counts


class CiderD:
    """CIDEr-D of captions against ``references[key]`` (tokenised: lists of words), with document frequencies
    from those same references (one document per key)."""

    def __init__(self, references: Mapping[Hashable, Sequence[Sequence[str]]], n: int = 4, sigma: float = 6.0):
        if not references:
            raise ValueError("CIDEr-D needs at least one image's references for its document frequencies")
        self.n, self.sigma = n, sigma
        self.references = references
        self.df: Counter[Ngram] = Counter()
        for refs in references.values():
            self.df.update({g for ref in refs for g in ngram_counts(ref, n)})
        self.log_docs = math.log(float(len(references)))
        self._cooked: dict[Hashable, list[tuple[dict[Ngram, float], list[float], int]]] = {}

    def _vector(self, counts: dict[Ngram, int]) -> tuple[dict[Ngram, float], list[float], int]:
        """tf-idf weights (all orders in one dict: a key's length says its order), norm per order, length."""
        vec, norm, length = {}, [0.0] * self.n, 0
        for g, tf in counts.items():
            w = float(tf) * (self.log_docs - math.log(max(1.0, self.df.get(g, 0.0))))
            vec[g] = w
            norm[len(g) - 1] += w * w
            if len(g) == 2:
                length += tf
        return vec, [math.sqrt(x) for x in norm], length

    def _refs(self, key: Hashable):
        cooked = self._cooked.get(key)
        if cooked is None:
            cooked = self._cooked[key] = [self._vector(ngram_counts(r, self.n)) for r in self.references[key]]
        return cooked

    def score(self, key: Hashable, words: Sequence[str]) -> float:
        """CIDEr-D of one caption (its words) for the image ``key``."""
        refs = self._refs(key)
        if not refs:
            raise ValueError(f"image {key!r} has no references")
        vec, norm, length = self._vector(ngram_counts(words, self.n))
        total = [0.0] * self.n
        for rvec, rnorm, rlength in refs:
            penalty = math.exp(-((length - rlength) ** 2) / (2 * self.sigma**2))
            val = [0.0] * self.n
            for g, w in vec.items():
                r = rvec.get(g)
                if r is not None:
                    val[len(g) - 1] += min(w, r) * r
            for k in range(self.n):
                if norm[k] != 0 and rnorm[k] != 0:
                    val[k] /= norm[k] * rnorm[k]
                total[k] += val[k] * penalty
        return 10.0 * sum(total) / self.n / len(refs)

    def scores(self, keys: Iterable[Hashable], captions: Iterable[Sequence[str]]) -> list[float]:
        return [self.score(k, c) for k, c in zip(keys, captions, strict=True)]
