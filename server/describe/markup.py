"""What a page's own markup calls an icon: the name its author's icon set gives the glyph.

An icon-only button or link rarely has a name, but its code usually says which icon it draws: Font Awesome's
``<i class="fa-solid fa-magnifying-glass">``, Bootstrap's ``<i class="bi bi-cart">``, Lucide's ``<svg class="lucide
lucide-menu">``, a Material Symbols ligature ``<span>search</span>``, a sprite's ``<use href="#icon-close">``, Font
Awesome's ``<svg data-icon="house">``, ``<img src="/icons/home.svg">``. Those are the file names icon sets give their
glyphs, and the vocabulary reads them already: the lookup (``Vocabulary.label_for``) that labels the icons the meaning
head learns from names the glyph the author chose, where the head, on a design it has never seen, is sure of a
meaning for about a third of icons. The pipeline says such a name (``decision.decide``) unless the pixels show a
photo or nothing.

The extension and the audit collect the names from the page (``KEYS``: ``class``, ``ligature``, ``symbol``,
``file``; tests/vectors/markup.json); which of them name an icon, and what it means, is decided here, once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .meanings import Meaning, Vocabulary

KEYS = ("ligature", "symbol", "class", "file")  # in the order they are trusted: the most specific first
# The names that say what a glyph is without its pixels: an icon font's or an svg's are icons by construction, but a
# file's name may be a photo's ("home.jpg"), so it names only what the pixels show to be an icon (decision.py).
WITHOUT_PIXELS = ("ligature", "symbol", "class")
MAX_CHARS = 300  # a value longer than this is no icon's name (the service refuses it)

# Icon sets' class prefixes: a class "<prefix>-<name>" draws the glyph <name> (fa-house, bi-cart, mdi-home,
# lucide-menu, octicon-search, ion-md-close, glyphicon-trash, icon-search, a site's own "icon--search").
CLASS_PREFIXES = frozenset(
    "fa fas far fal fat fad fab fass fasr fak fa-solid fa-regular fa-light fa-thin fa-duotone fa-brands fa-sharp "
    "bi mdi octicon lucide feather ion ionicon ionicons icon icons glyphicon gg codicon ti ri bx bxs bxl la las lar "
    "lab uil uis pi eva dashicons icofont oi zmdi si iconoir ph heroicon akar-icons typcn el-icon "
    "foundation-icon".split())
# What those sets' other classes say: sizes, animations, rotations and styles, never the glyph (fa-fw, fa-2x,
# fa-spin, fa-stack, mdi-24px, mdi-rotate-45, bi-fill...), and a page's own classes for what holds an icon
# (Bootstrap's "icon-link", "icon-button").
UTILITY = re.compile(
    r"(?:fw|xs|sm|lg|xl|2xs|2xl|\d+x|\d+px|\d+|spin|spin-pulse|spin-reverse|pulse|border|inverse|li|ul|stack"
    r"|stack-\dx|beat|beat-fade|bounce|fade|flip|shake|layers|layers-text|layers-counter|swap-opacity|rotate-by"
    r"|rotate-\d+|flip-[a-z]+|pull-[a-z]+|size-[a-z0-9]+|solid|regular|light|thin|duotone|brands|sharp|classic"
    r"|dark|inactive|fill|outline|outlined|rounded|round|two-tone|twotone|primary|secondary|white|black"
    r"|before|after|lg-[a-z]+|fixed-width|link|links|button|btn|text|label|only|wrapper|wrap|container|holder)")
# Platform words some sets put first (Ionicons 4's ion-md-close, ion-ios-search): where, not what.
PLATFORM = re.compile(r"^(?:md|ios)-")
# Generic words sprite ids and file names put around an icon's name ("#icon-search", "ic_search_black_24dp.svg").
GENERIC = re.compile(r"^(?:icons?|ico|ic|i|svg|sprite|symbol|glyph)(?:[-_.:]+|(?=[A-Z]))")
FILE_NOISE = re.compile(r"(?:[-_](?:\d+dp|\d+px|\d+x\d+|black|white|grey|gray|dark|light|24|20|16|32|48))+$|@\dx$")
IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
# File names that say "a picture", not which: "photo.png" in a link is a photo far more often than a photo icon.
FILE_PLACEHOLDERS = frozenset("image images img photo photos picture pictures pic graphic thumbnail thumb placeholder "
                              "spacer screenshot banner hero background bg".split())


@dataclass(frozen=True)
class MarkupName:
    meaning: Meaning  # what the name means ("meaning:search", "brand:github")
    source: str  # which of KEYS gave it
    name: str  # the page's name that did ("fa-magnifying-glass")


class MarkupError(ValueError):
    """Markup names that are not an object of short strings under KEYS (the service answers 400 with this)."""


def check_markup(value) -> dict[str, str]:
    """The markup names of a request, checked: an object of strings under ``KEYS``, each at most ``MAX_CHARS``
    (empty ones dropped); MarkupError says what is wrong."""
    if not isinstance(value, dict):
        raise MarkupError("'markup' must be an object like {\"class\": \"fa-solid fa-magnifying-glass\"}")
    unknown = sorted(set(value) - set(KEYS))
    if unknown:
        raise MarkupError(f"'markup' takes only {', '.join(KEYS)}, not {', '.join(map(str, unknown))}")
    for key, text in value.items():
        if not isinstance(text, str):
            raise MarkupError(f"'markup.{key}' must be a string")
        if len(text) > MAX_CHARS:
            raise MarkupError(f"'markup.{key}' is longer than {MAX_CHARS} characters")
    return {k: value[k].strip() for k in KEYS if value.get(k, "").strip()}


def _class_names(classes: str) -> list[str]:
    """The glyph names in a class attribute: "fa-solid fa-magnifying-glass fa-fw" -> ["magnifying-glass"]."""
    names = []
    for token in classes.split():
        for prefix in sorted((p for p in CLASS_PREFIXES if token.lower().startswith(p + "-")), key=len, reverse=True):
            rest = token[len(prefix):].lstrip("-_")
            if rest and not UTILITY.fullmatch(rest.lower()):
                names.append(PLATFORM.sub("", rest.lower()))
            break
    return names


def _symbol_name(symbol: str) -> str:
    """A sprite reference or an icon attribute as a glyph name: "sprite.svg#icon-search" -> "search",
    "mdi:home" -> "home", "magnifying-glass" -> "magnifying-glass"."""
    name = symbol.rpartition("#")[2] if "#" in symbol else symbol
    name = name.rpartition(":")[2]
    return _drop_prefix(name)


def _drop_prefix(name: str) -> str:
    name = GENERIC.sub("", name)
    head, _, rest = name.partition("-")
    return rest if rest and head.lower() in CLASS_PREFIXES else name


def _file_name(url: str) -> str:
    """An image's file name as a glyph name: "/static/ic_search_black_24dp.svg?v=2" -> "search",
    "home.3f9a2b.png" -> "home"."""
    path = urlsplit(url).path if "://" in url or url.startswith("/") else url.split("?")[0].split("#")[0]
    stem = unquote(path.rstrip("/").rpartition("/")[2]).partition(".")[0]
    return FILE_NOISE.sub("", _drop_prefix(stem))


def markup_name(markup: dict[str, str] | None, vocabulary: Vocabulary | None = None,
                sources: tuple[str, ...] = KEYS) -> MarkupName | None:
    """The meaning (or brand) the page's markup names its icon by, or None when no name is one the vocabulary
    knows. ``markup``: ``check_markup``'s output (``class``, ``ligature``, ``symbol``, ``file``); ``sources``: the
    keys to read (``WITHOUT_PIXELS`` where no pixels are looked at)."""
    if not markup:
        return None
    vocabulary = vocabulary or Vocabulary.load()
    for source in (k for k in KEYS if k in sources):
        value = markup.get(source, "")
        if source == "class":
            names = _class_names(value)
        elif source == "ligature":
            names = [value] if IDENTIFIER.match(value) else []
        elif source == "symbol":
            names = [_symbol_name(value)]
        else:  # a file's name is the weakest: "x.png" or "a.svg" may be anything
            names = [n for n in [_file_name(value)] if len(n) >= 3 and n.lower() not in FILE_PLACEHOLDERS]
        for name in names:
            key = vocabulary.label_for(name) if name and IDENTIFIER.match(name) else None
            meaning = vocabulary.get(key) if key else None
            if meaning is not None:
                return MarkupName(meaning, source, name)
    return None
