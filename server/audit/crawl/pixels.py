"""The pixels of the crawl's graphics, kept beside the journal rather than in it."""
from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path

from ..graphics import pixels_digest


class PixelStore:
    """The pixels of the canvases and inline svgs the rules found with suggestions on (an unnamed graphic, rule
    ``graphic-unnamed``, or a named one to judge): a ``data:`` URL per graphic reference
    (:func:`server.audit.graphics.graphic_ref`, its finding's ``image_url``), each drawing stored once however many
    pages show it.

    Findings and image contexts carry only the reference, so the journal and every report stay small whatever the
    graphic's size; the suggester reads the pixels from here to describe them (and to make the HTML report's
    thumbnail). On disk: JSON lines beside the journal (``report.state.pixels.jsonl``; an anonymous temporary file
    without a state path), ``{"digest", "data"}`` once per drawing and ``{"ref", "digest"}`` per graphic. The crawl
    writes a page's pixels before the journal line that records the page, so a resumed crawl has the pixels of every
    page it does not fetch again; a line torn by a kill is dropped on load. Memory: the index (reference -> digest,
    digest -> where its line is). Written by the crawl's recording thread, read by any."""

    def __init__(self, path: str | Path | None = None, fresh: bool = True):
        self.path = Path(path) if path is not None else None
        self._refs: dict[str, str] = {}
        self._lines: dict[str, tuple[int, int]] = {}  # digest -> (offset, length) of its data line
        self._file = None
        self._size = 0
        self._lock = threading.Lock()
        self._fresh = fresh
        if self.path is not None and not fresh and self.path.exists():
            self._replay()
        elif self.path is not None and fresh and self.path.exists():
            self.path.unlink()  # a new crawl: the saved one's pixels go with its journal

    @staticmethod
    def path_for(state_path: str | Path) -> Path:
        """Where a journal's pixels are: report.state.jsonl -> report.state.pixels.jsonl."""
        p = Path(state_path)
        return p.with_name(f"{p.stem}.pixels{p.suffix}")

    def _replay(self) -> None:
        with open(self.path, "rb") as f:
            offset = 0
            for line in f:
                if not line.endswith(b"\n"):
                    break  # torn by a kill: the page it belongs to was not recorded either
                try:
                    item = json.loads(line)
                    if "data" in item:
                        self._lines[str(item["digest"])] = (offset, len(line))
                    else:
                        self._refs[str(item["ref"])] = str(item["digest"])
                except (ValueError, KeyError, TypeError):
                    break
                offset += len(line)
        self._size = offset

    def _open(self):
        if self._file is None:
            if self.path is None:
                self._file = tempfile.TemporaryFile(  # noqa: SIM115 - kept open
                    prefix="alt-text-pixels-", suffix=".jsonl")
            elif self._fresh or not self.path.exists():
                self._file = open(self.path, "w+b")  # noqa: SIM115 - kept open
            else:
                self._file = open(self.path, "r+b")  # noqa: SIM115 - kept open
                self._file.truncate(self._size)  # a torn line goes
        return self._file

    def _append(self, item: dict) -> tuple[int, int]:
        data = json.dumps(item).encode("ascii") + b"\n"
        f = self._open()
        f.seek(self._size)
        f.write(data)
        offset, self._size = self._size, self._size + len(data)
        return offset, len(data)

    def put(self, ref: str, data_url: str) -> None:
        digest = pixels_digest(data_url)
        with self._lock:
            if digest not in self._lines:
                self._lines[digest] = self._append({"digest": digest, "data": data_url})
            if self._refs.get(ref) != digest:
                self._append({"ref": ref, "digest": digest})
                self._refs[ref] = digest
            self._file.flush()

    def update(self, pixels: dict[str, str]) -> None:
        for ref, data_url in pixels.items():
            self.put(ref, data_url)

    def digest(self, ref: str) -> str | None:
        """What identifies the graphic's pixels (the same for the same drawing anywhere), or None: not a graphic's
        reference."""
        return self._refs.get(ref)

    def get(self, ref: str) -> str | None:
        """The graphic's pixels as a ``data:`` URL, or None."""
        digest = self._refs.get(ref)
        if digest is None or digest not in self._lines:
            return None
        offset, length = self._lines[digest]
        with self._lock:
            f = self._open()
            f.seek(offset)
            line = f.read(length)
        return json.loads(line)["data"]

    def __contains__(self, ref) -> bool:
        return ref in self._refs

    def __len__(self) -> int:
        return len(self._refs)

    def sync(self) -> None:
        with self._lock:
            if self._file is not None and self.path is not None:
                self._file.flush()
                os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __repr__(self) -> str:
        return f"<PixelStore of {len(self._refs)} graphic(s), {len(self._lines)} drawing(s), {self._size:,} bytes>"
