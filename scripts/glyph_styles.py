"""Icon glyphs redrawn in the other styles icon sets draw them in: bolder, lighter, outlined, filled.

Icon sets differ most in how they draw, not what: a meaning drawn with a 1.5 px stroke by one set is a 2.5 px stroke
or a solid silhouette in the next. The meaning head learns from the glyph views (server/describe/glyph.py) of about
sixty families and is measured on families it never saw; learning from each training glyph also redrawn in another
style makes it right more often on a new family's design (scripts/fit_meanings.py ``--styles``; the model card has
the figures). Training only: the service reads the glyph view as the page drew it.

Each style works on the glyph view's ink (dark on white) with the stroke's half width measured by its distance
transform: ``bold`` dilates a stroke drawing (never so far that a counter, the white inside an "o", closes), ``light``
erodes one, ``outline`` keeps the rim of a filled drawing, ``fill`` fills a drawing's one or two enclosed counters (an
outline heart becomes a solid heart; a floppy disk's many panes would become a block, and are left).
"""
from __future__ import annotations

import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.describe.glyph import INK, centred  # noqa: E402

STYLES = ("bold", "light", "outline", "fill")
STROKE = 13  # px of half width at 224 px, under which a drawing is strokes, not filled shapes
RIM = 6  # px an outline keeps of a filled shape


def _disk(r: int) -> np.ndarray:
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx * xx + yy * yy) <= r * r


def restyled(view: Image.Image, style: str) -> Image.Image | None:
    """The glyph view ``view`` redrawn in ``style`` (one of STYLES), cropped and centred again as glyph views are;
    None when the style does not apply to this drawing (a filled shape is not made bolder, a stroke drawing is not
    outlined, a drawing without a counter is not filled)."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, not {style!r}")
    ink = 1 - np.asarray(view.convert("L"), np.float32) / 255
    mask = ink > 0.5
    if mask.sum() < 20:
        return None
    dt = ndimage.distance_transform_edt(mask)
    half = float(np.percentile(dt[mask], 90))
    strokes = half < STROKE
    if style == "bold":
        if not strokes:
            return None
        counters = ndimage.binary_fill_holes(mask) & ~mask
        out = None
        for r in (int(max(2, round(half * 0.6))), 2):
            bolder = ndimage.grey_dilation(ink, footprint=_disk(r))
            if (counters & (bolder <= 0.5)).sum() >= 0.6 * counters.sum():
                out = bolder
                break
        if out is None:
            return None
    elif style == "light":
        r = int(round(half * 0.45))
        if r < 2 or not strokes:
            return None
        out = ndimage.grey_erosion(ink, footprint=_disk(r))
    elif style == "outline":
        if strokes:
            return None
        out = ink * (dt <= RIM)
    else:  # fill
        filled = ndimage.binary_fill_holes(mask)
        if filled.sum() < 1.3 * mask.sum() or ndimage.label(filled & ~mask)[1] > 2:
            return None
        out = np.maximum(ink, filled.astype(np.float32))
    out = np.clip(out, 0, 1)
    return centred(out, view.size[0]) if (out > INK).any() else None


def some_style(view: Image.Image, key: str) -> tuple[str, Image.Image] | tuple[str, None]:
    """(style, redrawn view) in the first style that applies, in an order fixed by ``key`` (the icon's file name,
    so that a cached set is redrawn the same way every time); ("", None) when none does."""
    order = np.random.default_rng(zlib.crc32(key.encode())).permutation(len(STYLES))
    for i in order:
        out = restyled(view, STYLES[i])
        if out is not None:
            return STYLES[i], out
    return "", None
