"""Turn untrusted bytes into a safe RGB image, or a clear reason why not.

The format is detected from the bytes by Pillow (a Content-Type header or a file name is not trusted), only common
web raster formats are accepted, and the pixel count is checked from the header *before* decoding, so a
decompression bomb costs a few bytes of reading, not gigabytes of memory. The decoding itself is the model's
(``model.images.prepare``), the same that training and evaluation use.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from model.images import DEFAULT_MAX_SIDE, prepare, to_rgb, transparent_share  # noqa: F401 (re-exported)

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "GIF", "WEBP", "BMP"})
DEFAULT_MAX_PIXELS = 40_000_000  # 40 megapixels: larger than any photo a page shows, far below a bomb


@dataclass
class ImageError(Exception):
    """A rejected image. ``code`` is stable and machine-readable; ``message`` is for people."""

    code: str
    message: str

    def __str__(self) -> str:
        return self.message


def _sniff_text(data: bytes) -> str | None:
    head = data[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:4096].lower()):
        return "svg"
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--", b"<")):
        return "html"
    return None


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int = DEFAULT_MAX_SIDE) -> Image.Image:
    """Decode ``data`` into an RGB image (first frame of animations, EXIF orientation applied, transparency
    composited onto white), at most ``max_side`` pixels on its longer side: the model looks at 224-260 px, and
    a full-size photo held in a queue costs far more memory than that. Raises ImageError with one of the codes: empty,
    unsupported_format, too_many_pixels, corrupt_image."""
    if not data:
        raise ImageError("empty", "the image is empty (0 bytes)")
    kind = _sniff_text(data)
    if kind == "svg":
        raise ImageError("unsupported_format", "SVG images are not supported; send a raster image (PNG, JPEG, WebP)")
    if kind == "html":
        raise ImageError("unsupported_format", "this is an HTML page, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("too_many_pixels", f"the image has more than {max_pixels:,} pixels") from None
    except UnidentifiedImageError:
        raise ImageError("unsupported_format", "not a recognised image format") from None
    except OSError as e:
        raise ImageError("corrupt_image", f"the image could not be read ({e})") from None
    if im.format not in ALLOWED_FORMATS:
        raise ImageError("unsupported_format",
                         f"{im.format} images are not supported (accepted: {', '.join(sorted(ALLOWED_FORMATS))})")
    w, h = im.size
    if w <= 0 or h <= 0:
        raise ImageError("corrupt_image", "the image has no pixels")
    if w * h > max_pixels:
        raise ImageError("too_many_pixels", f"the image is {w}x{h}, more than {max_pixels:,} pixels")
    try:
        prepared = prepare(im, max_side)  # model/images.py: the decoding every image the model sees goes through
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageError("corrupt_image", f"the image is damaged or truncated ({e})") from None
    rgb = prepared.image
    # What the RGB copy no longer shows, for the describe pipeline's evidence (a transparent icon, its size,
    # and which pixels are the picture rather than the white it was composited onto).
    rgb.info["alt_text_source"] = {"width": prepared.width, "height": prepared.height,
                                   "transparent": prepared.transparent}
    if prepared.alpha is not None:
        rgb.info["alt_text_alpha"] = prepared.alpha
    return rgb


def read_image_file(path: str, max_bytes: int = 50_000_000, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """A local image file through the same checks as a fetched one."""
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise ImageError("not_found", "no such file") from None
    except IsADirectoryError:
        raise ImageError("not_found", "is a directory, not an image file") from None
    except OSError as e:
        raise ImageError("unreadable", f"cannot read the file ({e.strerror or e})") from None
    if len(data) > max_bytes:
        raise ImageError("too_large", f"the file is larger than {max_bytes:,} bytes")
    return decode_image(data, max_pixels)
