"""Word-level vocabulary.

Captions are short and their words repeat, so a word vocabulary with a frequency cut is small (a few thousand
entries) and keeps the output layer cheap. The vocabulary is stored as JSON inside the checkpoint: no pickle.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(text: str) -> list[str]:
    """Lower-case words; punctuation is dropped (the metrics' PTB tokenizer drops it as well)."""
    return _WORD.findall(text.lower())


class Vocabulary:
    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __init__(self, words: Iterable[str]):
        self.itos: list[str] = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary has duplicate words")

    @classmethod
    def build(cls, captions: Iterable[str], min_freq: int = 3) -> "Vocabulary":
        counts = Counter(w for c in captions for w in tokenize(c))
        # Most frequent first, ties alphabetical: the same corpus always gives the same ids.
        words = sorted((w for w, n in counts.items() if n >= min_freq), key=lambda w: (-counts[w], w))
        return cls(words)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, max_len: int | None = None) -> list[int]:
        """<bos> w1 ... wn <eos>; words beyond max_len are cut (the <eos> is kept)."""
        ids = [self.stoi.get(w, self.unk_id) for w in tokenize(text)]
        if max_len is not None:
            ids = ids[: max_len - 2]
        return [self.bos_id, *ids, self.eos_id]

    def decode(self, ids: Iterable[int]) -> str:
        """Words up to the first <eos>; specials are dropped."""
        words = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            words.append(self.itos[i])
        return " ".join(words)

    def to_json(self) -> str:
        return json.dumps(self.itos)

    @classmethod
    def from_json(cls, text: str) -> "Vocabulary":
        itos = json.loads(text)
        if not isinstance(itos, list) or itos[: len(SPECIALS)] != list(SPECIALS):
            raise ValueError("not a vocabulary: expected a JSON list starting with the special tokens")
        return cls(itos[len(SPECIALS):])
