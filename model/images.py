"""The one way images become pixels for the model: training, feature caching, evaluation, the CLI and the service.

``load_image`` opens a file or bytes and hands it to ``prepare``, which does what users' images get in the service
(``server/netsafe/images.py`` runs its untrusted-input checks first, then calls ``prepare`` too): the first frame of an
animation, JPEG draft mode, EXIF orientation, a thumbnail to ``max_side`` on the longer side and transparency
composited onto white. So the numbers measured on datasets come from the path users get.

The model knows nothing of HTTP or of untrusted input: no format allow-list and no pixel limit here (Pillow's own
decompression-bomb error still applies).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

DEFAULT_MAX_SIDE = 1024  # decoded images are reduced to this: several times what any encoder looks at
# Part of the feature cache's key (model/features.py): bump it when prepare() changes what pixels an image gives.
IMAGE_PATH_VERSION = "prepare-1"


@dataclass
class Prepared:
    """An image ready for the model, and what its RGB copy no longer shows."""

    image: Image.Image  # RGB, at most max_side on its longer side
    width: int  # after EXIF orientation, before the thumbnail
    height: int
    transparent: float  # share of (nearly) transparent pixels, before compositing onto white
    alpha: Image.Image | None  # the alpha channel at the thumbnail's size, when anything was transparent


def prepare(im: Image.Image, max_side: int = DEFAULT_MAX_SIDE) -> Prepared:
    """Decode an opened (not yet loaded) image the way the model expects it. Raises what Pillow raises on damaged
    data (OSError, ValueError, SyntaxError)."""
    im.seek(0)  # first frame of a GIF/WebP animation
    if im.format == "JPEG":
        im.draft("RGB", (max_side, max_side))  # decode at a reduced scale: faster, a fraction of the memory
    im.load()
    im = ImageOps.exif_transpose(im)
    width, height, transparent = im.width, im.height, transparent_share(im)
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.BICUBIC)
    alpha = im.convert("RGBA").getchannel("A") if transparent > 0 else None
    return Prepared(to_rgb(im), width, height, transparent, alpha)


def load_image(source: str | Path | bytes, max_side: int = DEFAULT_MAX_SIDE) -> Image.Image:
    """An RGB image from a trusted file path or bytes (a dataset image), through ``prepare``."""
    fp = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else source
    with Image.open(fp) as im:
        rgb = prepare(im, max_side).image
        return rgb.copy() if rgb is im else rgb  # closing the opened image must not close what we return


def transparent_share(im: Image.Image) -> float:
    """Share of (nearly) transparent pixels: recorded before compositing onto white, which hides them."""
    if im.mode not in ("RGBA", "LA", "PA") and not (im.mode == "P" and "transparency" in im.info):
        return 0.0
    alpha = np.asarray(im.convert("RGBA").getchannel("A").resize((64, 64), Image.NEAREST))
    return float((alpha < 128).mean())


def to_rgb(im: Image.Image) -> Image.Image:
    """Palette, greyscale, CMYK and alpha images to plain RGB; transparent areas become white, as on most pages."""
    if im.mode == "RGB":
        return im.copy() if im.info else im
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, im).convert("RGB")
    return im.convert("RGB")
