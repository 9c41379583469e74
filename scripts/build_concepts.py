"""Write ``server/describe/concepts.json``: a plain word for each of the encoder's 1000 ImageNet classes.

A listener understands "dog", not "Staffordshire bullterrier". ImageNet's classes are WordNet 3.0 noun synsets, so
each class's hypernym chain says what it is: we walk it up to the first ancestor in ``BASIC`` (dog breeds → dog,
"Egyptian cat" → cat) and otherwise keep the class's own most familiar name: of its synonyms, the one whose
commonest meaning this is (WordNet's sense numbers, ``cntlist.rev``) when ImageNet's first label was never used
in this sense, so "cornet, horn, trumpet, trump" is said "trumpet" (its first sense; cornet: never), not "cornet". Run once per change of ``BASIC``; needs
Debian's ``wordnet-base`` (``/usr/share/wordnet``) and the class-order synset list that timm's wheel ships
(``pip download timm --no-deps``, then unzip ``timm/data/_info/imagenet_synsets.txt``).

    python scripts/build_concepts.py --synsets /tmp/timm/timm/data/_info/imagenet_synsets.txt
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

# ancestor lemma -> the word a listener hears. Ordered from specific to general only by the chain itself.
BASIC = {
    "dog": "dog", "domestic_cat": "cat", "wolf": "wolf", "fox": "fox", "bird": "bird", "snake": "snake",
    "lizard": "lizard", "turtle": "turtle", "frog": "frog", "salamander": "salamander", "shark": "shark",
    "ray": "ray", "crab": "crab", "spider": "spider", "beetle": "beetle", "butterfly": "butterfly",
    "monkey": "monkey", "ape": "ape", "lemur": "lemur", "whale": "whale", "fungus": "mushroom", "fish": "fish",
    "bear": "bear", "big_cat": None, "antelope": "antelope", "rabbit": "rabbit", "squirrel": "squirrel",
}


def read_wordnet(path: Path) -> tuple[dict[str, tuple[list[str], list[str]]], dict[str, list[str]]]:
    """offset -> (lemmas, hypernym offsets), and offset -> each lemma's sense key, from WordNet's data.noun
    (format: wndb(5); sense keys: senseidx(5))."""
    out, keys = {}, {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue  # licence header
        f = line.split()
        n_words = int(f[3], 16)
        lemmas = [f[4 + 2 * i] for i in range(n_words)]
        keys[f[0]] = [f"{f[4 + 2 * i].lower()}%1:{f[1]}:{int(f[5 + 2 * i], 16):02d}::" for i in range(n_words)]
        i = 4 + 2 * n_words
        n_ptrs = int(f[i])
        hypers = [f[i + 1 + 4 * j + 1] for j in range(n_ptrs) if f[i + 1 + 4 * j] in ("@", "@i")]
        out[f[0]] = (lemmas, hypers)
    return out, keys


def read_sense_numbers(path: Path) -> dict[str, int]:
    """sense key -> its sense number (1: the lemma's commonest meaning), from WordNet's cntlist.rev."""
    out = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        key, number, _count = line.split()
        out[key] = int(number)
    return out


def familiar_name(offset: str, wn, keys, senses, fallback: str) -> str:
    """ImageNet's first label, unless that was never tagged with this meaning in WordNet's corpus and a synonym
    was, as its commonest meaning (sense number 1)."""
    lemmas = wn[offset][0]
    if keys[offset][0] in senses:
        return fallback  # ImageNet's label is a familiar name for this already
    best = min(range(len(lemmas)), key=lambda i: (senses.get(keys[offset][i], 99), i))
    return lemmas[best].replace("_", " ").lower() if senses.get(keys[offset][best]) == 1 else fallback


def plain_word(offset: str, wn, fallback: str) -> str:
    """The nearest ``BASIC`` ancestor's word, else ``fallback``."""
    seen, frontier = set(), [offset]
    while frontier:  # breadth-first: the nearest basic ancestor wins
        nxt = []
        for off in frontier:
            lemmas, hypers = wn[off]
            for lemma in lemmas:
                if off != offset and lemma.lower() in BASIC:
                    return BASIC[lemma.lower()] or fallback
            nxt.extend(h for h in hypers if h not in seen)
            seen.update(hypers)
        frontier = nxt
    return fallback


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--synsets", required=True, type=Path, help="timm's imagenet_synsets.txt (class order)")
    ap.add_argument("--wordnet", default=Path("/usr/share/wordnet/data.noun"), type=Path)
    ap.add_argument("--senses", default=Path("/usr/share/wordnet/cntlist.rev"), type=Path)
    ap.add_argument("--out", default=Path(__file__).resolve().parents[1] / "server/describe/concepts.json",
                    type=Path)
    args = ap.parse_args()
    from torchvision.models._meta import _IMAGENET_CATEGORIES as names

    wn, keys = read_wordnet(args.wordnet)
    senses = read_sense_numbers(args.senses)
    synsets = args.synsets.read_text().split()
    assert len(synsets) == len(names) == 1000
    classes = []
    for name, wnid in zip(names, synsets):
        word = plain_word(wnid[1:], wn, familiar_name(wnid[1:], wn, keys, senses, name.lower()))
        classes.append([name, wnid, word])
    rows = ",\n".join(json.dumps(c, ensure_ascii=False) for c in classes)
    args.out.write_text('{"source": "ImageNet-1k classes in torchvision order; WordNet 3.0 hypernyms",\n'
                        '"columns": ["label", "wnid", "word"],\n"classes": [\n' + rows + "\n]}\n")
    print(f"wrote {args.out}: {len({c[2] for c in classes})} distinct words for 1000 classes")


if __name__ == "__main__":
    main()
