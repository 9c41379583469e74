"""Cheap pixel statistics that tell drawn images (screenshots, charts, icons, text) from photographs.

Photographs have sensor noise and soft gradients: runs of *exactly* equal neighbouring pixels are rare, and nearly
every pixel has a colour of its own. Rendered graphics are the opposite: large flat areas, few colours, hard
edges, often transparency and small or extreme sizes. These numbers cost well under a millisecond on a 160 px
nearest-neighbour thumbnail (nearest keeps exact equalities that a smoothing resize would blend away).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

THUMB = 160


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


def transparent_share(im: Image.Image) -> float:
    if im.mode not in ("RGBA", "LA", "PA") and not (im.mode == "P" and "transparency" in im.info):
        return 0.0
    alpha = np.asarray(im.convert("RGBA").getchannel("A").resize((64, 64), Image.NEAREST))
    return float((alpha < 128).mean())


def pixel_stats(im: Image.Image) -> PixelStats:
    width, height, transparent = source_of(im)
    small = im.convert("RGB")
    if max(small.size) > THUMB:
        small = small.resize((max(1, round(small.width * THUMB / max(small.size))),
                              max(1, round(small.height * THUMB / max(small.size)))), Image.NEAREST)
    a = np.asarray(small, dtype=np.int32)
    packed = (a[..., 0] << 16) | (a[..., 1] << 8) | a[..., 2]
    pairs = [packed[:, 1:] == packed[:, :-1], packed[1:, :] == packed[:-1, :]]
    n_pairs = sum(p.size for p in pairs) or 1
    equal = sum(int(p.sum()) for p in pairs) / n_pairs
    _, counts = np.unique(packed, return_counts=True)
    lum = a @ np.array([299, 587, 114]) / 255000.0
    steps = [np.abs(np.diff(lum, axis=1)), np.abs(np.diff(lum, axis=0))]
    n_steps = sum(s.size for s in steps) or 1
    mx, mn = a.max(-1), a.min(-1)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1), 0.0)
    return PixelStats(
        width=int(width), height=int(height), transparent=round(float(transparent), 4),
        equal_neighbours=round(equal, 4), distinct_colours=round(len(counts) / packed.size, 4),
        top_colour=round(float(counts.max()) / packed.size, 4), white=round(float((mn >= 235).mean()), 4),
        saturation=round(float(sat.mean()), 4), edges=round(sum(float(s.sum()) for s in steps) / n_steps, 4))
