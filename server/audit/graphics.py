"""Pixels for the graphics a page draws itself: an inline ``<svg>`` rasterised from its markup, or (``--render``) a
``<canvas>`` or ``<svg>`` as Chromium shows it, so that the describe pipeline can say what an unnamed graphic
shows (rule ``graphic-unnamed`` in :mod:`server.audit.rules`).

An inline SVG is untrusted input handed to a renderer, so what is rasterised is not the page's markup but a copy
built here, element by element:

* only SVG elements and attributes; no ``<script>``, ``<foreignObject>``, event handlers, prefixed attributes of
  editors (``inkscape:``), ``xmlns`` declarations other than the two written on the root;
* no external reference: an ``href``/``xlink:href`` must be a fragment (``#id``) or a raster ``data:`` image, and
  every ``url(...)`` in an attribute or a ``<style>`` that is not ``url(#id)`` becomes ``none`` (``@import`` is
  dropped), so nothing is fetched or read from disk;
* ``currentColor`` is black (the page's CSS color is not known without a browser), the background white, with a
  margin (:data:`MARGIN`) so that OCR reads text drawn to the edge;
* the HTML parser lower-cases names, SVG's are case-sensitive: ``viewbox`` is ``viewBox`` again (the HTML
  standard's adjustment tables);
* a ``<use href="#icon">`` of a sprite defined elsewhere on the page brings a copy of that element in ``<defs>``;
* the markup is cut at :data:`MAX_SVG_BYTES`; larger graphics get no pixels.

``rsvg-convert`` (librsvg) renders it from stdin, with no base URI, under ``prlimit`` (memory and CPU) where
that is installed, within :data:`RASTER_TIMEOUT` seconds; its PNG is decoded within the fetch layer's limits
(:func:`server.netsafe.decode_fetched`). Without rsvg-convert no inline SVG gets pixels, and its finding none
suggestion.
"""
from __future__ import annotations

import base64
import hashlib
import io
import re
import shutil
import subprocess
from functools import lru_cache
from typing import Callable
from urllib.parse import quote, urldefrag
from xml.sax.saxutils import escape, quoteattr

from bs4 import Comment, NavigableString, Tag

SVG_MEDIA_TYPE = "image/svg+xml"
MAX_SVG_BYTES = 256_000  # the serialised copy; a graphic this large gets no pixels
MAX_PNG_BYTES = 8_000_000  # what rsvg-convert may write
RASTER_TIMEOUT = 5.0
RASTER_MEMORY = 512 * 1024 * 1024  # prlimit --as
MIN_SIDE, MAX_SIDE = 512, 1024  # the longer side of the raster (small icons are scaled up for OCR)
MARGIN = 0.08  # white around the graphic, of its longer side: OCR misses text that touches the edge
DEFAULT_SIZE = (300.0, 150.0)  # a replaced element's default size, as browsers give an svg without one
MAX_SPRITE_REFS = 64

_SVG_NS, _XLINK_NS = "http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"
# The HTML standard's tables: SVG names the HTML parser lower-cases, and their real case.
_ELEMENT_CASE = {n.lower(): n for n in (
    "altGlyph altGlyphDef altGlyphItem animateColor animateMotion animateTransform clipPath feBlend feColorMatrix "
    "feComponentTransfer feComposite feConvolveMatrix feDiffuseLighting feDisplacementMap feDistantLight "
    "feDropShadow feFlood feFuncA feFuncB feFuncG feFuncR feGaussianBlur feImage feMerge feMergeNode feMorphology "
    "feOffset fePointLight feSpecularLighting feSpotLight feTile feTurbulence foreignObject glyphRef "
    "linearGradient radialGradient textPath").split()}
_ATTRIBUTE_CASE = {n.lower(): n for n in (
    "attributeName attributeType baseFrequency baseProfile calcMode clipPathUnits diffuseConstant edgeMode "
    "filterUnits glyphRef gradientTransform gradientUnits kernelMatrix kernelUnitLength keyPoints keySplines "
    "keyTimes lengthAdjust limitingConeAngle markerHeight markerUnits markerWidth maskContentUnits maskUnits "
    "numOctaves pathLength patternContentUnits patternTransform patternUnits pointsAtX pointsAtY pointsAtZ "
    "preserveAlpha preserveAspectRatio primitiveUnits refX refY repeatCount repeatDur requiredExtensions "
    "requiredFeatures specularConstant specularExponent spreadMethod startOffset stdDeviation stitchTiles "
    "surfaceScale systemLanguage tableValues targetX targetY textLength viewBox viewTarget xChannelSelector "
    "yChannelSelector zoomAndPan").split()}
_DROPPED_ELEMENTS = frozenset({"script", "foreignobject", "iframe", "audio", "video", "canvas", "object", "embed",
                               "title", "desc", "metadata", "handler", "listener"})
_SAFE_DATA_IMAGE = re.compile(r"data:image/(?:png|jpe?g|gif|webp)[;,]", re.I)
_URL = re.compile(r"url\(\s*(['\"]?)\s*(?!#)[^)]*\)", re.I)
_IMPORT = re.compile(r"@import[^;]*;?", re.I)
_CURRENT_COLOR = re.compile(r"currentcolor", re.I)
_FRAGMENT_REF = re.compile(r"(?:href\s*=\s*[\"']\s*#|url\(\s*['\"]?#)([^\"')\s]+)", re.I)
# What draws something: an svg of only <defs>, <symbol>s and <style> (a sprite sheet) draws nothing.
DRAWING_ELEMENTS = frozenset({"path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text", "image",
                              "use", "foreignobject"})
_NOT_DRAWN = frozenset({"defs", "symbol", "clippath", "mask", "pattern", "marker", "lineargradient",
                        "radialgradient", "filter", "title", "desc", "metadata", "style", "script"})


# The geometry without which a shape paints nothing (SVG 2: a rect without width or height, a path without d).
_GEOMETRY = {"path": ("d",), "rect": ("width", "height"), "circle": ("r",), "ellipse": ("rx", "ry"),
             "line": ("x1", "y1", "x2", "y2"), "polyline": ("points",), "polygon": ("points",),
             "image": ("href", "xlink:href"), "use": ("href", "xlink:href")}


def _paints(node: Tag) -> bool:
    needed = _GEOMETRY.get(node.name)
    if needed is None:  # text, foreignObject: their text
        return bool(node.get_text().strip())
    given = [str(node.get(a) or "").strip() for a in needed]
    if node.name == "rect":
        return all(v and v.strip("0.") for v in given)
    return any(v and v.strip("0.") for v in given)


def draws_something(svg: Tag) -> bool:
    """Whether the svg has an element that paints (a shape with its geometry, text, a used symbol or an image),
    outside the parts that only define things for later use (a sprite sheet of <symbol>s paints nothing)."""
    for node in svg.find_all(DRAWING_ELEMENTS):
        if _paints(node) and not any(p.name in _NOT_DRAWN for p in _up_to(node, svg)):
            return True
    return False


def _up_to(node: Tag, root: Tag):
    parent = node.parent
    while parent is not None and parent is not root:
        yield parent
        parent = parent.parent


def _clean_value(value: str) -> str:
    return _CURRENT_COLOR.sub("#000000", _URL.sub("none", value))


def _attributes(el: Tag) -> list[tuple[str, str]]:
    out = []
    for name, value in el.attrs.items():
        value = " ".join(value) if isinstance(value, list) else str(value)
        low = name.lower()
        if low.startswith("on") or low.startswith("xmlns") or low in ("style",) and "expression(" in value.lower():
            continue
        if ":" in low and not low.startswith(("xlink:", "xml:")):
            continue  # editors' namespaces (inkscape:, sodipodi:) would be undeclared prefixes
        if low in ("href", "xlink:href"):
            stripped = value.strip()
            if not (stripped.startswith("#") or _SAFE_DATA_IMAGE.match(stripped)):
                continue
            out.append((low, stripped))
            continue
        out.append((_ATTRIBUTE_CASE.get(low, low), _clean_value(value)))
    return out


def _write(el: Tag, parts: list[str], budget: list[int]) -> None:
    """The element as SVG markup into ``parts`` (iterative: deep markup cannot overflow the stack)."""
    stack: list = [el]
    while stack:
        node = stack.pop()
        if budget[0] < 0:
            return
        if isinstance(node, str) and not isinstance(node, NavigableString):
            parts.append(node)  # a closing tag
            continue
        if isinstance(node, Comment) or not isinstance(node, (Tag, NavigableString)):
            continue
        if isinstance(node, NavigableString):
            if type(node) is NavigableString:
                text = escape(str(node))
                parts.append(text)
                budget[0] -= len(text)
            continue
        low = node.name.lower()
        if low in _DROPPED_ELEMENTS or ":" in low:
            continue
        name = _ELEMENT_CASE.get(low, low)
        attrs = "".join(f" {k}={quoteattr(v)}" for k, v in _attributes(node))
        if low == "style":
            css = _CURRENT_COLOR.sub("#000000", _URL.sub("none", _IMPORT.sub("", node.get_text())))
            parts.append(f"<style{attrs}>{escape(css)}</style>")
            budget[0] -= len(css)
            continue
        parts.append(f"<{name}{attrs}>")
        budget[0] -= len(name) + len(attrs) + 2
        stack.append(f"</{name}>")
        stack.extend(reversed(node.contents))


def _length(value) -> float | None:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:px)?\s*", str(value or ""))
    return float(match.group(1)) if match else None


def _view_box(value) -> tuple[float, float, float, float] | None:
    numbers = re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", str(value or ""), re.I)
    if len(numbers) != 4:
        return None
    x, y, w, h = map(float, numbers)
    return (x, y, w, h) if w > 0 and h > 0 else None


def raster_size(width: float, height: float) -> tuple[int, int]:
    """The raster's size: the graphic's own proportions, its longer side within MIN_SIDE and MAX_SIDE."""
    longer = max(width, height)
    scale = MIN_SIDE / longer if longer < MIN_SIDE else MAX_SIDE / longer if longer > MAX_SIDE else 1.0
    return max(1, round(width * scale)), max(1, round(height * scale))


def svg_document(svg: Tag, lookup: Callable[[str], Tag | None] = lambda _id: None) -> bytes | None:
    """A standalone, sanitised copy of an inline ``<svg>`` (see the module docstring), sized for rasterising, or
    None when it is larger than MAX_SVG_BYTES. ``lookup(id)`` finds an element of the page by id (a sprite's
    symbol)."""
    budget = [MAX_SVG_BYTES]
    body: list[str] = []
    for child in svg.contents:
        _write(child, body, budget)
    ids = {str(t.get("id")) for t in svg.find_all(id=True)}
    defs: list[str] = []
    wanted = list(dict.fromkeys(_FRAGMENT_REF.findall("".join(body))))
    seen = 0
    while wanted and seen < MAX_SPRITE_REFS and budget[0] >= 0:
        ref = wanted.pop(0)
        seen += 1
        if ref in ids:
            continue
        ids.add(ref)
        target = lookup(ref)
        if target is None or target is svg or not isinstance(target, Tag):
            continue
        part: list[str] = []
        _write(target, part, budget)
        defs.extend(part)
        wanted.extend(r for r in dict.fromkeys(_FRAGMENT_REF.findall("".join(part))) if r not in ids)
    if budget[0] < 0:
        return None
    box = _view_box(svg.get("viewbox"))
    width, height = _length(svg.get("width")), _length(svg.get("height"))
    if width is None or height is None:
        if box is not None:
            width, height = (width, box[3] * width / box[2]) if width else \
                (box[2] * height / box[3], height) if height else (box[2], box[3])
        else:
            width, height = width or DEFAULT_SIZE[0], height or DEFAULT_SIZE[1]
    if box is None:
        box = (0.0, 0.0, width, height)
    pad = MARGIN * max(box[2], box[3])
    box = (box[0] - pad, box[1] - pad, box[2] + 2 * pad, box[3] + 2 * pad)
    out_w, out_h = raster_size(width * box[2] / (box[2] - 2 * pad), height * box[3] / (box[3] - 2 * pad))
    root = [(k, v) for k, v in _attributes(svg) if k not in ("width", "height", "viewBox", "x", "y")]
    attrs = "".join(f" {k}={quoteattr(v)}" for k, v in root)
    head = (f'<svg xmlns="{_SVG_NS}" xmlns:xlink="{_XLINK_NS}" width="{out_w}" height="{out_h}" '
            f'viewBox="{" ".join(f"{n:g}" for n in box)}"{attrs}>')
    markup = head + (f"<defs>{''.join(defs)}</defs>" if defs else "") + "".join(body) + "</svg>"
    data = markup.encode("utf-8")
    return data if len(data) <= MAX_SVG_BYTES else None


# What a CSS selector keeps as it is in a URL fragment; the rest is percent-encoded (the Selectors and States note
# asks for "(", ")", "," and "=" at least; a space or ">" may not appear in a URL).
_FRAGMENT_SAFE = "!$*+;:@/?-._~"


def graphic_ref(page_url: str, selector: str) -> str:
    """A graphic's reference in the reports (its finding's ``image_url``): the page's URL with a fragment naming the
    element by its CSS selector, as the W3C note "Selectors and States" writes one
    (``https://example.com/#selector(type=CssSelector,value=main%20%3E%20svg)``): short, the same in every audit
    of an unchanged page, and readable, where a ``data:`` URL of its pixels is up to MAX_SVG_BYTES long."""
    return f"{urldefrag(page_url)[0]}#selector(type=CssSelector,value={quote(selector, safe=_FRAGMENT_SAFE)})"


def pixels_digest(data_url: str) -> str:
    """What identifies a graphic's pixels (the same drawing on several pages is described once)."""
    return hashlib.sha256(data_url.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def data_url(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


@lru_cache(maxsize=1)
def rsvg_convert() -> str | None:
    """The rsvg-convert executable, or None: inline SVGs then get no pixels."""
    return shutil.which("rsvg-convert")


class RasterError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def rasterise_svg(data: bytes, timeout: float = RASTER_TIMEOUT) -> bytes:
    """PNG bytes of an SVG document (one :func:`svg_document` made, or any ``data:image/svg+xml`` a page has) by
    rsvg-convert, on white. Raises RasterError."""
    exe = rsvg_convert()
    if exe is None:
        raise RasterError("no_rasteriser", "rsvg-convert is not installed: inline SVGs cannot be described")
    if len(data) > MAX_SVG_BYTES:
        raise RasterError("too_large", f"the SVG is larger than {MAX_SVG_BYTES:,} bytes")
    cmd = [exe, "--format", "png", "--background-color", "white"]
    prlimit = shutil.which("prlimit")
    if prlimit:
        cmd = [prlimit, f"--as={RASTER_MEMORY}", f"--cpu={int(timeout) + 1}", "--", *cmd]
    try:
        done = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise RasterError("timeout", f"rasterising the SVG took longer than {timeout:g} s") from None
    except OSError as e:
        raise RasterError("no_rasteriser", f"rsvg-convert could not run ({e.strerror})") from None
    if done.returncode != 0 or not done.stdout.startswith(b"\x89PNG"):
        raise RasterError("invalid_svg", "the SVG could not be rasterised")
    if len(done.stdout) > MAX_PNG_BYTES:
        raise RasterError("too_large", "the rasterised SVG is too large")
    return done.stdout


def screenshot_data_url(png: bytes, max_side: int = MAX_SIDE) -> str | None:
    """A browser's screenshot of one element as a PNG ``data:`` URL, at most ``max_side`` pixels on its longer side;
    None when it shows nothing (one colour: a canvas never drawn on, ACT e88epe's "not visible") or cannot be
    read."""
    from PIL import Image

    from server.netsafe import FetchError, decode_fetched

    try:
        image = decode_fetched(png)
    except FetchError:
        return None
    lo, hi = zip(*image.getextrema())
    if lo == hi:
        return None
    image.thumbnail((max_side, max_side), Image.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=True)
    return data_url(buf.getvalue(), "image/png")


__all__ = ["DRAWING_ELEMENTS", "MAX_SVG_BYTES", "RasterError", "SVG_MEDIA_TYPE", "data_url", "draws_something",
           "graphic_ref", "pixels_digest", "raster_size", "rasterise_svg", "rsvg_convert", "screenshot_data_url",
           "svg_document"]
