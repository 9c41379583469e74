"""Reading a response body under one byte cap and the fetch's deadline.

The cap counts the bytes on the wire and the bytes inflated from them (gzip and deflate, with a bounded
decompressor, so a small bomb stays small). A fetch either refuses a body over the cap (``too_large``: an image is
whole or useless, and a ``Content-Length`` over it is refused before reading) or cuts it there and says so
(a page is checked as far as it got). The deadline is checked between chunks, and the watchdog of
:mod:`server.netsafe.deadline` shuts the socket down when it expires, so a read that waits on a trickle is cut
mid-chunk too.
"""
from __future__ import annotations

import zlib

from .deadline import Deadline
from .errors import FetchError

CHUNK = 64 * 1024


class BoundedBody:
    """Collects the body under the byte cap, inflating gzip/deflate with a bounded decompressor. ``truncate``: keep
    the first ``max_bytes`` (inflated) bytes instead of refusing."""

    def __init__(self, encoding: str | None, max_bytes: int, truncate: bool = False) -> None:
        self.max_bytes = max_bytes
        self.truncate = truncate
        self.raw = 0
        self.out = bytearray()
        enc = (encoding or "").strip().lower()
        if enc in ("", "identity"):
            self.inflater = None
        elif enc in ("gzip", "x-gzip"):
            self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self.inflater = zlib.decompressobj()
        else:
            raise FetchError("unsupported_encoding", f"the image server used an unsupported encoding ({enc[:40]})",
                             502)

    def too_large(self) -> FetchError:
        return FetchError("too_large", f"the image is larger than {self.max_bytes:,} bytes", 413)

    @property
    def full(self) -> bool:
        return len(self.out) > self.max_bytes

    def _emit(self, data: bytes) -> None:
        self.out += data
        if self.full and not self.truncate:
            raise self.too_large()

    def room(self) -> int:
        return max(self.max_bytes - self.raw + 1, 1)

    def feed(self, chunk: bytes) -> None:
        self.raw += len(chunk)
        if self.raw > self.max_bytes and not self.truncate:
            raise self.too_large()
        if self.inflater is None:
            self._emit(chunk)
            return
        try:
            self._emit(self.inflater.decompress(chunk, self.max_bytes - len(self.out) + 1))
            while self.inflater.unconsumed_tail and not self.full:
                self._emit(self.inflater.decompress(self.inflater.unconsumed_tail,
                                                    self.max_bytes - len(self.out) + 1))
        except zlib.error:
            raise FetchError("upstream_error", "the image server sent a corrupt compressed body", 502) from None

    def finish(self) -> bytes:
        if self.inflater is not None and not self.full:
            try:
                self._emit(self.inflater.flush())
            except zlib.error:
                raise FetchError("upstream_error", "the image server sent a corrupt compressed body", 502) from None
        return bytes(self.out[:self.max_bytes]) if self.truncate else bytes(self.out)


def read_body(response, max_bytes: int, deadline: Deadline, truncate: bool = False) -> tuple[bytes, bool]:
    """(body, whether it was cut at ``max_bytes``) of a urllib3 response read without decoding."""
    length = response.headers.get("Content-Length")
    if length is not None and not truncate:
        try:
            declared = int(length.strip())
        except ValueError:
            declared = None
        if declared is not None and declared > max_bytes:
            raise FetchError("too_large", f"the image is larger than {max_bytes:,} bytes "
                                          f"(Content-Length {declared:,})", 413)
    body = BoundedBody(response.headers.get("Content-Encoding"), max_bytes, truncate)
    while not body.full:
        deadline.check()
        chunk = response.read(min(CHUNK, body.room()))
        if not chunk:
            break
        body.feed(chunk)
    if not body.full:
        deadline.check()  # a socket cut by the watchdog can look like a clean end of body
    return body.finish(), body.full
