"""What a page's own markup calls an icon: the name its author's icon set gives the glyph.

An icon-only button or link rarely has a name, but its code usually says which icon it draws: Font Awesome's
``<i class="fa-solid fa-magnifying-glass">``, Bootstrap's ``<i class="bi bi-cart">``, Lucide's ``<svg class="lucide
lucide-menu">``, a Material Symbols ligature ``<span>search</span>``, a sprite's ``<use href="#icon-close">``, Font
Awesome's ``<svg data-icon="house">``, ``<img src="/icons/home.svg">``. Those are the file names icon sets give their
glyphs, and the vocabulary reads them already: the lookup (``Vocabulary.label_for``) that labels the icons the meaning
head learns from names the glyph the author chose, where the head, on a design it has never seen, is sure of a
meaning for about two icons in five. The pipeline says such a name (``decision.decide``) unless the pixels show a
photo or nothing.

The extension and the audit collect the names from the page (``KEYS``: ``class``, ``ligature``, ``symbol``,
``file``; tests/vectors/markup.json); which of them name an icon, and what it means, is decided here, once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .meanings import STYLE_TOKENS, Meaning, Vocabulary, icon_tokens

KEYS = ("ligature", "symbol", "class", "file")  # in the order they are trusted: the most specific first
MAX_CHARS = 300  # a value longer than this is no icon's name (the service refuses it)

# Icon sets' class prefixes: a class "<prefix>-<name>" draws the glyph <name> (fa-house, bi-cart, mdi-home,
# lucide-menu, octicon-search, ion-md-close, glyphicon-trash). The audit finds icon-font elements by them too.
SET_PREFIXES = frozenset(
    "fa fas far fal fat fad fab fass fasr fak fa-solid fa-regular fa-light fa-thin fa-duotone fa-brands fa-sharp "
    "bi mdi octicon lucide feather ion ionicon ionicons glyphicon gg codicon ti ri bx bxs bxl la las lar "
    "lab uil uis pi eva dashicons icofont oi zmdi si iconoir ph heroicon akar-icons typcn el-icon "
    "foundation-icon".split())
# A site's own icon classes ("icon-search", IcoMoon's fonts, "icon--search"): the same words also name a page's
# classes for where and how an icon sits ("icon-left", "icon-medium", "icon-disabled"), so they are read after
# every set's own class, and never for those words (GENERIC_UTILITY).
GENERIC_PREFIXES = frozenset(("icon", "icons"))
CLASS_PREFIXES = SET_PREFIXES | GENERIC_PREFIXES
_LONGEST_FIRST = sorted(CLASS_PREFIXES, key=len, reverse=True)  # "fa-solid-..." is Font Awesome's before "fa-"
# What those sets' other classes say: sizes, animations, rotations and styles, never the glyph (fa-fw, fa-2x,
# fa-spin, fa-stack, mdi-24px, mdi-rotate-45, bi-fill...), and a page's own classes for what holds an icon
# (Bootstrap's "icon-link", "icon-button").
UTILITY = re.compile(
    r"(?:fw|xs|sm|lg|xl|2xs|2xl|\d+x|\d+px|\d+|spin|spin-pulse|spin-reverse|pulse|border|inverse|li|ul|stack"
    r"|stack-\dx|beat|beat-fade|bounce|fade|flip|shake|layers|layers-text|layers-counter|swap-opacity|rotate-by"
    r"|rotate-\d+|flip-[a-z]+|pull-[a-z]+|size-[a-z0-9]+|solid|regular|light|thin|duotone|brands|sharp|classic"
    r"|dark|inactive|fill|outline|outlined|rounded|round|two-tone|twotone|primary|secondary|white|black"
    r"|before|after|lg-[a-z]+|fixed-width|link|links|button|btn|text|label|only|wrapper|wrap|container|holder)")
GENERIC_UTILITY = re.compile(
    r"(?:left|right|top|bottom|start|end|center|centre|middle|small|medium|large|big|tiny|huge|mini|xlarge|xsmall"
    r"|disabled|hidden|visible|active|inactive|selected|muted|new|block|inline|title|group|open|closed|on|off"
    r"|hover|focus|after|before|spacing|space|margin|color|colour|text-[a-z-]+|is-[a-z-]+|has-[a-z-]+)")
# Platform words some sets put first (Ionicons 4's ion-md-close, ion-ios-search): where, not what.
PLATFORM = re.compile(r"^(?:md|ios)-")
# Generic words sprite ids and file names put around an icon's name ("#icon-search", "ic_search_black_24dp.svg").
GENERIC = re.compile(r"^(?:icons?|ico|ic|i|svg|sprite|symbol|glyph)(?:[-_.:]+|(?=[A-Z]))")
FILE_NOISE = re.compile(r"(?:[-_](?:\d+dp|\d+px|\d+x\d+|black|white|grey|gray|dark|light|24|20|16|32|48))+$|@\dx$")
IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
LIGATURE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # a word a ligature font draws as one glyph ("more_vert")
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
        said = ", ".join(repr(k[:40]) for k in unknown[:3]) + (" ..." if len(unknown) > 3 else "")
        raise MarkupError(f"'markup' takes only {', '.join(KEYS)}, not {said}")
    for key, text in value.items():
        if not isinstance(text, str):
            raise MarkupError(f"'markup.{key}' must be a string")
        if len(text) > MAX_CHARS:
            raise MarkupError(f"'markup.{key}' is longer than {MAX_CHARS} characters")
    return {k: value[k].strip() for k in KEYS if value.get(k, "").strip()}


def _class_names(classes: str) -> list[str]:
    """The glyph names in a class attribute, the likeliest first: "fa-solid fa-magnifying-glass fa-fw" ->
    ["magnifying-glass"]; a set's own class before a site's generic one ("icon-left fa-search": "search"), and a
    name of style words only last (a weight class some sets put beside the glyph's: "x-bold x-house" is a house;
    "fa-bold" alone is Bold)."""
    found = []  # (rank, name)
    for token in classes.split():
        prefix = next((p for p in _LONGEST_FIRST if token.lower().startswith(p + "-")), None)
        if prefix is None:
            continue
        rest = token[len(prefix):].lstrip("-_").lower()
        generic = prefix in GENERIC_PREFIXES
        if rest and not UTILITY.fullmatch(rest) and not (generic and GENERIC_UTILITY.fullmatch(rest)):
            style_only = all(t in STYLE_TOKENS for t in icon_tokens(rest, keep_style=True))
            found.append((2 if style_only else int(generic), PLATFORM.sub("", rest)))
    return [name for _, name in sorted(found, key=lambda rn: rn[0])]


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
    "home.3f9a2b.png" -> "home"; "" for what is no URL ("http://[x/a.png")."""
    try:
        path = urlsplit(url).path if "://" in url or url.startswith("/") else url.split("?")[0].split("#")[0]
    except ValueError:
        return ""
    stem = unquote(path.rstrip("/").rpartition("/")[2]).partition(".")[0]
    return FILE_NOISE.sub("", _drop_prefix(stem))


def needs_icon_pixels(markup: dict[str, str]) -> bool:
    """Whether the names only hold when the pixels show an icon: an icon font's glyph or an svg is an icon by
    construction, but an image file may be a photo ("home.jpg", or ``<img class="icon-user" src="sign-in.png">``),
    so the names of an image file's markup (``file`` given) name only what the pixels show to be an icon."""
    return "file" in markup


def markup_name(markup: dict[str, str] | None, vocabulary: Vocabulary | None = None,
                without_pixels: bool = False) -> MarkupName | None:
    """The meaning (or brand) the page's markup names its icon by, or None when no name is one the vocabulary
    knows. ``markup``: ``check_markup``'s output (``class``, ``ligature``, ``symbol``, ``file``);
    ``without_pixels``: for a caller that looks at no pixels (the audit): None where they would be needed."""
    if not markup or (without_pixels and needs_icon_pixels(markup)):
        return None
    vocabulary = vocabulary or Vocabulary.load()
    for source in KEYS:
        value = markup.get(source, "")
        if source == "class":
            names = _class_names(value)
        elif source == "ligature":
            names = [value] if LIGATURE.fullmatch(value) else []
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
