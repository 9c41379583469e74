"""What icons mean and which brands logos show: the vocabulary the meaning head is fitted on and speaks in.

``meanings.json`` holds each meaning once (an id, the label a listener hears and a control is named by, and the
file names icon sets give it); ``scripts/gather_icon_set.py`` labels real icon files with it, and the describe
pipeline turns the head's classes back into labels with it. One file, so that what is learned and what is said
cannot drift apart.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PATH = Path(__file__).with_name("meanings.json")
OTHER = "other"  # the head's class for icons that mean nothing in the vocabulary: never spoken

# Words in icon file names that say how an icon is drawn, not what it means (Material's "outlined", Font Awesome's
# "solid", freedesktop's "-symbolic", MingCute's "-line", Solar's "-linear", Jam's "-f", sizes, Hugeicons' "-01",
# containers like "circle" in "info-circle").
STYLE_TOKENS = frozenset(
    "outline outlined filled fill solid regular light thin bold duotone sharp round rounded two tone twotone "
    "symbolic alt variant mini micro small sm lg o f line linear broken bulk stroke 12 16 18 20 22 24 28 32 48 64 "
    "01 02 03 04 05 circle square ios".split())
BRAND_TOKENS = frozenset(("logo", "brand", "brands"))
MARK = "mark"  # GitHub's "mark-github" is its brand mark, but "question-mark" and "x-mark" are no logos
# First words some sets put before every name of a group, saying where the icon belongs, not what it means
# (Foundation's "social-github", Typicons' "media-pause" and "vendor-android", Dashicons' "editor-bold").
NAMESPACE_TOKENS = frozenset(("social", "vendor", "media", "editor", "controls", "admin", "travel", "device"))


def icon_tokens(stem: str, keep_style: bool = False) -> list[str]:
    """An icon file name as the vocabulary's words: "MagnifyingGlass", "search_outline", "edit-find-symbolic" ->
    ["magnifying", "glass"], ["search"], ["edit", "find"] (``keep_style``: style words kept)."""
    stem = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", stem)
    tokens = [t for t in re.split(r"[-_. ]+|--", stem.lower()) if t]
    meant = [t for t in tokens if keep_style or t not in STYLE_TOKENS]
    return meant or tokens  # a name of style words only is its own name: "bold", "circle", the brand "line"


@dataclass(frozen=True)
class Meaning:
    id: str
    label: str
    brand: bool = False

    @property
    def key(self) -> str:
        """The head's class name: "meaning:search", "brand:github"."""
        return ("brand:" if self.brand else "meaning:") + self.id


class Vocabulary:
    def __init__(self, data: dict):
        self.meanings = {m["id"]: Meaning(m["id"], m["label"]) for m in data["meanings"]}
        self.brands = {b["id"]: Meaning(b["id"], b["name"], brand=True) for b in data["brands"]}
        self.charts = {c["id"]: Meaning(c["id"], c["label"]) for c in data.get("charts", [])}
        self._meaning_names = {n: m["id"] for m in data["meanings"] for n in m["names"]}
        self.names = {m["id"]: tuple(m["names"]) for m in data["meanings"]}  # meaning id -> the names sets give it
        self._brand_names = {n: b["id"] for b in data["brands"] for n in b["names"]}

    @classmethod
    @lru_cache(maxsize=1)
    def load(cls, path: Path = PATH) -> "Vocabulary":
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def get(self, key: str, title: str | None = None) -> Meaning | None:
        """The meaning of a head class ("meaning:search", "brand:github", "chart:bar"); None for "other" and unknown
        keys.
        A brand outside the curated list (a Simple Icons slug) takes ``title`` as its name."""
        kind, _, ident = key.partition(":")
        if kind == "meaning":
            return self.meanings.get(ident)
        if kind == "chart":
            return self.charts.get(ident)
        if kind == "brand":
            return self.brands.get(ident) or (Meaning(ident, title, brand=True) if title else None)
        return None

    def brand_named(self, text: str) -> Meaning | None:
        """The brand whose name is the whole of ``text`` (a logo's OCR'd word: "GitHub", "Mastodon"), or None."""
        key = re.sub(r"[^a-z0-9]", "", text.lower())
        if len(key) < 3:
            return None
        if not hasattr(self, "_by_name"):
            self._by_name = {re.sub(r"[^a-z0-9]", "", b.label.lower()): b for b in self.brands.values()}
        return self._by_name.get(key)

    def variant_of(self, stem: str) -> str | None:
        """The meaning an icon name starts with when the whole name is no meaning of its own ("battery-40",
        "folder-network": a battery, a folder, with a detail), else None. Such icons are neither that meaning nor
        "other" to the head: they are left out of fitting and measuring."""
        tokens = icon_tokens(stem)
        for n in range(len(tokens) - 1, 0, -1):
            name = "-".join(tokens[:n])
            if name in self._meaning_names:
                return self._meaning_names[name]
        return None

    def label_for(self, stem: str, brand_set: bool = False, brands: dict[str, str] | None = None) -> str | None:
        """The class of an icon file: "meaning:<id>", "brand:<id>" or None (means nothing in the vocabulary).
        ``brand_set``: the file comes from a set of brand marks only, where every Simple Icons slug
        (``brands``: slug -> title) is a brand."""
        words = icon_tokens(stem, keep_style=True)
        stems = [stem]  # "media-playback-start" (freedesktop's own name), then "playback-start"
        if len(words) > 1 and words[0] in NAMESPACE_TOKENS:
            stems.append("-".join(words[1:]))
        bares = ["-".join(t for t in icon_tokens(s) if t not in BRAND_TOKENS) for s in stems]
        unmarked = ["-".join(t for t in b.split("-") if t != MARK) for b in bares]
        brand = next((self._brand_names[b] for b in bares + unmarked if b in self._brand_names), None)
        if brand:
            return "brand:" + brand
        bare, tokens = bares[-1], icon_tokens(stems[-1])  # the name without its group word, if it has one
        if brand_set:
            slug = re.sub(r"[^a-z0-9]", "", bare)
            return "brand:" + slug if brands and slug in brands else None
        if len(bare) != len("-".join(tokens)):
            return None  # "logo-usd": a logo the vocabulary does not know
        names = (name for s in stems for name in self._names_to_try(s))
        return next(("meaning:" + self._meaning_names[n] for n in names if n in self._meaning_names), None)

    @staticmethod
    def _names_to_try(stem: str) -> list[str]:
        """The whole name, then with style words dropped from its end one by one, then with every style word
        dropped: "circle-stack" is a database before "stack", "text-bold-28-regular" is bold before "text"."""
        words = icon_tokens(stem, keep_style=True)
        names = ["-".join(words)]
        while len(words) > 1 and words[-1] in STYLE_TOKENS:
            words = words[:-1]
            names.append("-".join(words))
        return [*names, "-".join(icon_tokens(stem))]
