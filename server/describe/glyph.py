"""An icon as its shape: the glyph, dark on white, cropped and centred, whatever colours the page drew it in.

Icon sets draw a meaning in many styles, and pages show one icon in many more: a grey glyph on white, a white glyph on
a coloured button, a coloured glyph on a transparent background, at 16 px or 64 px with any padding. The encoder's
features of the page's pixels change with every one of those, so a head trained on some icon sets spoke for few
icons of a set it had never seen. The glyph view takes the colours and the framing away before the encoder sees
the icon, leaving what the icon sets share: the shape.

How: the background is the commonest colour of the border (transparency counts as a colour: pixels are compared
premultiplied by their alpha); every pixel's ink is its distance from that background (none where an opaque
background's rounded corners let the page through). When the ink fills most of
its box (a glyph drawn inside a filled button whose rounded corners made the page the border's colour), the
button's own colour becomes background too, so the glyph inside it is what remains.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

SIZE = 224
MARGIN = 0.12  # of the glyph's longer side, on every side
INK = 0.15  # ink below this is background when the glyph's box is found


def _commonest(colours: np.ndarray) -> np.ndarray:
    """The mean of the commonest colour (RGBA premultiplied, 0..1) among ``colours`` [N, 4], quantised to 1/16."""
    _, inverse, counts = np.unique(np.round(colours * 16).astype(np.int32), axis=0, return_inverse=True,
                                   return_counts=True)
    return colours[inverse.ravel() == counts.argmax()].mean(0)


def _ink(distance: np.ndarray) -> np.ndarray:
    """Distances from the background scaled to 0..1 ink: the 90th percentile of the clearly inked pixels is full ink,
    so anti-aliased edges stay grey and a faint glyph is as dark as a bold one."""
    top = distance.max()
    if top < 1e-3:
        return np.zeros_like(distance)
    inked = distance > 0.05 * top
    return np.clip(distance / max(float(np.percentile(distance[inked], 90)), 1e-3), 0, 1)


def glyph_view(image: Image.Image, size: int = SIZE) -> Image.Image:
    """The RGB ``size`` x ``size`` glyph view of ``image``; white when the image has no ink at all."""
    a = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
    pre = np.concatenate([a[..., :3] * a[..., 3:], a[..., 3:]], -1)
    border = np.concatenate([pre[0], pre[-1], pre[:, 0], pre[:, -1]])
    background = _commonest(border)
    distance = np.sqrt(((pre - background) ** 2).sum(-1))
    if background[3] >= 0.5:  # an opaque background (a button) with transparent corners: the page shows there
        distance[a[..., 3] < 0.99] = 0  # (and their anti-aliased edges)
    ink = _ink(distance)
    if not (ink > INK).any():
        return Image.new("RGB", (size, size), "white")
    ys, xs = np.nonzero(ink > INK)
    if (ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1] > 0.5).mean() > 0.7:  # a filled shape: a glyph inside?
        fill = _commonest(pre[ink > 0.5])
        inner = _ink(np.minimum(distance, np.sqrt(((pre - fill) ** 2).sum(-1))))
        if 0.03 < (inner > 0.5).mean() < 0.6:
            ink = inner
    return centred(ink, size)


def centred(ink: np.ndarray, size: int = SIZE) -> Image.Image:
    """``ink`` (0..1, some of it above INK) as a glyph view: its box cropped, centred with MARGIN on every side, dark
    on white, ``size`` x ``size`` RGB."""
    ys, xs = np.nonzero(ink > INK)
    crop = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = crop.shape
    side = int(round(max(h, w) * (1 + 2 * MARGIN)))
    canvas = np.zeros((side, side), np.float32)
    canvas[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = crop
    view = Image.fromarray(np.uint8(255 - canvas * 255), "L").resize((size, size), Image.BILINEAR)
    return view.convert("RGB")
