"""Cheap pixel statistics that tell drawn images (screenshots, charts, icons, text) from photographs.

Photographs have sensor noise and soft gradients: runs of *exactly* equal neighbouring pixels are rare, and nearly
every pixel has a colour of its own. Rendered graphics are the opposite: large flat areas, few colours, hard
edges, often transparency and small or extreme sizes. These numbers cost well under a millisecond on a 128 px
nearest-neighbour thumbnail (nearest keeps exact equalities that a smoothing resize would blend away).

Where the image has transparency, the statistics describe its visible pixels only: a photo cut out on a
transparent background is still a photo, and the flat background would otherwise make it look drawn.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from ..netsafe.images import transparent_share

THUMB = 128


@dataclass(frozen=True)
class PixelStats:
    width: int  # the image as published (before the decoder reduced it)
    height: int
    transparent: float  # share of (nearly) transparent pixels in the source
    equal_neighbours: float  # share of horizontally/vertically adjacent pixel pairs with identical RGB
    distinct_colours: float  # distinct RGB values / pixels in the thumbnail
    top_colour: float  # share of the single most common colour
    white: float  # share of near-white pixels
    saturation: float  # mean HSV saturation, 0..1
    edges: float  # mean absolute luminance step between neighbours, 0..1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PixelStats":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def source_of(im: Image.Image) -> tuple[int, int, float]:
    """(width, height, transparent share) as recorded by the safe decoder, else read from ``im`` itself."""
    info = im.info.get("alt_text_source")
    if info:
        return info["width"], info["height"], info["transparent"]
    return im.width, im.height, transparent_share(im)


def _visible(im: Image.Image, size: tuple[int, int]) -> np.ndarray | None:
    """[H, W] bool mask of the opaque pixels at ``size``, or None when (nearly) everything is visible."""
    alpha = im.info.get("alt_text_alpha")
    if alpha is None and im.mode in ("RGBA", "LA", "PA"):
        alpha = im.getchannel("A")
    if alpha is None:
        return None
    mask = np.asarray(alpha.resize(size, Image.NEAREST)) >= 128
    return mask if 0.02 * mask.size < mask.sum() < 0.98 * mask.size else None


def pixel_stats(im: Image.Image) -> PixelStats:
    width, height, transparent = source_of(im)
    small = im.convert("RGB")
    if max(small.size) > THUMB:
        small = small.resize((max(1, round(small.width * THUMB / max(small.size))),
                              max(1, round(small.height * THUMB / max(small.size)))), Image.NEAREST)
    a = np.asarray(small, dtype=np.int32)
    visible = _visible(im, small.size)
    if visible is None:
        visible = np.ones(a.shape[:2], bool)
    packed = (a[..., 0] << 16) | (a[..., 1] << 8) | a[..., 2]
    h_pair, v_pair = visible[:, 1:] & visible[:, :-1], visible[1:, :] & visible[:-1, :]
    n_pairs = int(h_pair.sum() + v_pair.sum()) or 1
    equal = (int(((packed[:, 1:] == packed[:, :-1]) & h_pair).sum())
             + int(((packed[1:, :] == packed[:-1, :]) & v_pair).sum())) / n_pairs
    shown = packed[visible]
    _, counts = np.unique(shown, return_counts=True)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]  # channel by channel: numpy's reductions over a last axis of 3 are slow
    lum = (r * 299 + g * 587 + b * 114) / 255000.0
    steps = (float((np.abs(np.diff(lum, axis=1)) * h_pair).sum()) + float((np.abs(np.diff(lum, axis=0)) * v_pair).sum()))
    mx, mn = np.maximum(np.maximum(r, g), b)[visible], np.minimum(np.minimum(r, g), b)[visible]
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1), 0.0)
    return PixelStats(
        width=int(width), height=int(height), transparent=round(float(transparent), 4),
        equal_neighbours=round(equal, 4), distinct_colours=round(len(counts) / max(shown.size, 1), 4),
        top_colour=round(float(counts.max()) / max(shown.size, 1), 4), white=round(float((mn >= 235).mean()), 4),
        saturation=round(float(sat.mean()), 4), edges=round(steps / n_pairs, 4))
