"""The crawl's findings, kept on disk rather than in memory, and read back like a list."""
from __future__ import annotations

import itertools
import json
import tempfile
import threading
from pathlib import Path
from typing import Iterable, Iterator, Sequence


class StreamedSequence(Sequence):
    """A read-only sequence made from its iterator (the findings on disk, a report's findings streamed from them):
    ``len`` is known, indexing and slices scan, ``==`` compares item by item with another one or a list."""

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            return list(itertools.islice(self, start, stop, step)) if step > 0 else list(self)[key]
        index = key + len(self) if key < 0 else key
        if not 0 <= index < len(self):
            raise IndexError("index out of range")
        return next(itertools.islice(self, index, None))

    def __eq__(self, other) -> bool:
        if isinstance(other, (StreamedSequence, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None


class FindingStore(StreamedSequence):
    """The crawl's findings (``asdict(Finding)`` dicts, in crawl order), kept on disk instead of in memory: JSON
    lines in an anonymous temporary file (deleted when the store is closed or collected; the durable copy is the
    journal's). A big crawl holds several findings per page, so a list of them grew without bound; the store
    holds two numbers. It reads like a list (``len``, iteration, indexing, slices, ``==``): iterating streams the
    file in blocks, one finding at a time, and sees the findings stored when the iteration began. Appended to by
    one thread (the crawl's recording thread); reading from others is safe."""

    _BLOCK = 1 << 18

    def __init__(self, items: Iterable[dict] = (), dir: str | Path | None = None):
        self._dir = dir
        self._file = None  # opened on the first finding: most states in tests never hold one
        self._len = self._size = 0
        self._last = (0, 0)  # (index, byte offset) where the last extend began: the journal reads from there
        self._lock = threading.Lock()
        self.extend(items)

    def extend(self, items: Iterable[dict]) -> None:
        # ensure_ascii: a lone surrogate from a page survives the round trip exactly, as it did in a list
        data = b"".join(json.dumps(f).encode("ascii") + b"\n" for f in items)
        if not data:
            return
        with self._lock:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="alt-text-findings-", suffix=".jsonl", dir=self._dir)
            self._file.seek(self._size)
            self._file.write(data)
            self._last = (self._len, self._size)
            self._len += data.count(b"\n")  # json.dumps escapes newlines in strings: one line per finding
            self._size += len(data)

    def append(self, item: dict) -> None:
        self.extend((item,))

    def _iter_from(self, index: int, offset: int) -> Iterator[dict]:
        end, buf, pos = self._size, b"", offset
        while pos < end:
            with self._lock:
                self._file.seek(pos)
                block = self._file.read(min(self._BLOCK, end - pos))
            if not block:
                raise OSError("the findings file was cut short")
            pos += len(block)
            *lines, buf = (buf + block).split(b"\n")
            for line in lines:
                yield json.loads(line)

    def __iter__(self) -> Iterator[dict]:
        return self._iter_from(0, 0)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, key):
        if isinstance(key, slice) and key.step in (None, 1):
            start, stop, _ = key.indices(self._len)
            if start >= self._last[0]:  # the journal's "what the last page added": read from there
                return list(itertools.islice(self._iter_from(*self._last), start - self._last[0],
                                             stop - self._last[0]))
        return super().__getitem__(key)

    def __repr__(self) -> str:
        return f"<FindingStore of {self._len} finding(s), {self._size:,} bytes on disk>"

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            self._len = self._size = 0
            self._last = (0, 0)
