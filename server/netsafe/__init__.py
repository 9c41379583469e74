"""Fetching and decoding what strangers send: URLs that must not reach private networks, bytes that must not
exhaust memory. Everything that touches an untrusted URL or image goes through here, and nothing here knows
about captions."""

from .fetch import (
           FetchError,
           FetchLimits,
           check_url,
           decode_fetched,
           fetch_bytes,
           fetch_image,
)
from .images import ImageError, decode_image, read_image_file

__all__ = ["FetchError", "FetchLimits", "ImageError", "check_url", "decode_fetched", "decode_image", "fetch_bytes",
           "fetch_image", "read_image_file"]
