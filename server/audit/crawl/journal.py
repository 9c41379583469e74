"""The crawl state on disk, as an append-only journal, and its replay."""
from __future__ import annotations

import itertools
import json
import os
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from ..rules import Finding, ImageContext
from .atomic_file import write_atomic
from .findings import FindingStore
from .pixels import PixelStore
from .state import SKIP_REASONS, CrawlState, Page

JOURNAL_FORMAT = "alt-text-audit-state/2"  # a journal: header line + one line per change set


class Journal:
    """The append-only crawl state on disk: a header line, then one JSON object per line, each a change set.

    Keys of a change set (all optional): ``pages``, ``findings`` and ``image_contexts`` (appended), ``seen`` and
    ``checked`` (URLs added to those sets), ``queued`` ([url, depth, referrer] appended to the frontier), ``taken``
    (URLs taken from the frontier without a page record: already audited through a redirect), ``skipped`` (the
    counts, whole),
    ``skipped_urls``, ``site_errors`` and ``origins`` (appended), ``seeded``, ``done``, ``limit_reached``. The
    frontier after replay is the URLs queued, in order, minus the pages recorded and the URLs taken: exactly what the
    crawl held in memory, with the pages in flight back at its front. The crawler reports its changes through
    :meth:`see`, :meth:`check`, :meth:`queue` and :meth:`take`; the append-only lists are followed by length."""

    def __init__(self, path: str | Path | None, state: CrawlState):
        self.path = Path(path) if path is not None else None
        self.state = state
        self._seen: list[str] = []
        self._checked: list[str] = []
        self._queued: list[list] = []
        self._taken: list[str] = []
        self._documents: dict[str, str] = {}
        self._file = None
        self._mark()

    def _mark(self) -> None:
        st = self.state
        self._n = {"pages": len(st.pages), "findings": len(st.findings), "image_contexts": len(st.image_contexts),
                   "skipped_urls": len(st.skipped_urls), "site_errors": len(st.site_errors),
                   "origins": len(st.origins)}
        self._flags = (st.seeded, st.done, st.limit_reached)
        self._skipped = dict(st.skipped)

    # -- writing -------------------------------------------------------------------------------------------------

    @staticmethod
    def header(state: CrawlState) -> str:
        return json.dumps({"format": JOURNAL_FORMAT, "start_url": state.start_url,
                           "started_at": state.started_at}, ensure_ascii=False) + "\n"

    @staticmethod
    def snapshot_lines(state: CrawlState, chunk: int = 1000) -> Iterator[str]:
        """The whole state as change sets (from an empty state): one line with everything but the findings, then
        the findings and the image contexts ``chunk`` to a line, streamed from their stores (never one line, or one
        string, for them all)."""
        pages = {p.url for p in state.pages}
        yield json.dumps({
            "pages": [asdict(p) for p in state.pages], "seen": sorted(state.seen), "checked": sorted(state.checked),
            # Recorded URLs are taken out on replay: queue the frontier after them so that none is lost.
            "queued": [list(i) for i in state.frontier if i[0] not in pages],
            "skipped": state.skipped, "skipped_urls": state.skipped_urls, "site_errors": state.site_errors,
            "origins": state.origins, "seeded": state.seeded, "done": state.done,
            "limit_reached": state.limit_reached, "documents": state.documents}, ensure_ascii=False) + "\n"
        for key in ("findings", "image_contexts"):
            items = iter(getattr(state, key))
            while batch := list(itertools.islice(items, chunk)):
                yield json.dumps({key: batch}, ensure_ascii=False) + "\n"

    def open(self) -> None:
        """Start writing: append to the journal the state was replayed from, else start a fresh one."""
        if self.path is None:
            return
        st = self.state
        if getattr(st, "_journal", None) == (str(self.path.resolve()), self.path.stat().st_mtime_ns
                                              if self.path.exists() else None):
            self._file = open(self.path, "r+b")
            self._file.truncate(st._journal_end)  # a line torn by a kill goes
            self._file.seek(0, os.SEEK_END)
        else:
            write_atomic(self.path, itertools.chain([self.header(st)], self.snapshot_lines(st)))
            self._file = open(self.path, "ab")
        self._mark()
        self._flags = None  # the flags as this run starts (Crawler resets done) go in the first line
        self._last_sync = time.monotonic()

    def see(self, url: str) -> None:
        self._seen.append(url)

    def check(self, url: str) -> None:
        self._checked.append(url)

    def queue(self, item: tuple) -> None:
        self._queued.append(list(item))

    def take(self, url: str) -> None:
        self._taken.append(url)

    def document(self, digest: str, url: str) -> None:
        self._documents[digest] = url

    def flush(self, sync_every: float | None = None, force_sync: bool = False) -> None:
        """Append what changed since the last flush as one line (nothing when nothing changed); fsync when
        ``sync_every`` seconds have passed or ``force_sync``. A write reaches the OS at once: only a power cut can
        lose a flushed line, never a kill of the process."""
        st = self.state
        change: dict = {}
        for key in ("pages", "findings", "image_contexts", "skipped_urls", "site_errors", "origins"):
            items = getattr(st, key)
            n = len(items)
            if n > self._n[key]:
                new = items[self._n[key]:n]
                change[key] = [asdict(p) for p in new] if key == "pages" else list(new)
                self._n[key] = n
        for key, delta in (("seen", self._seen), ("checked", self._checked), ("queued", self._queued),
                           ("taken", self._taken)):
            if delta:
                change[key] = list(delta)
                delta.clear()
        if self._documents:
            change["documents"] = dict(self._documents)
            self._documents.clear()
        if st.skipped != self._skipped:
            change["skipped"] = dict(st.skipped)
            self._skipped = dict(st.skipped)
        flags = (st.seeded, st.done, st.limit_reached)
        if flags != self._flags:
            change.update(seeded=st.seeded, done=st.done, limit_reached=st.limit_reached)
            self._flags = flags
        if self._file is None:
            return
        if change:
            self._file.write(json.dumps(change, ensure_ascii=False).encode("utf-8", "replace") + b"\n")
            self._file.flush()
        if force_sync or (sync_every is not None and time.monotonic() - self._last_sync >= sync_every):
            st.graphics.sync()  # the pixels the lines name, first
            os.fsync(self._file.fileno())
            self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._file is not None:
            self.flush(force_sync=True)
            self._file.close()
            self._file = None

    # -- reading -------------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> CrawlState:
        path = Path(path)
        with open(path, "rb") as f:
            first = f.readline()
            try:
                head = json.loads(first)
            except ValueError as e:
                raise ValueError(f"the state file is not valid JSON ({e})") from None
            if isinstance(head, dict) and head.get("format") == "alt-text-audit-state/1":
                raise ValueError("a whole-state file from before the journal, which this version does not read: "
                                 "start the audit again without --resume")
            if not isinstance(head, dict) or head.get("format") != JOURNAL_FORMAT:
                raise ValueError("not an alt-text audit state file (or one from another version)")
            try:
                st = CrawlState(start_url=head["start_url"], origins=[], started_at=float(head["started_at"]),
                                findings=FindingStore(dir=path.parent),
                                image_contexts=FindingStore(dir=path.parent),
                                graphics=PixelStore(PixelStore.path_for(path), fresh=False))
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"the state file is incomplete or damaged ({e})") from None
            frontier: dict[str, tuple] = {}
            end, number = len(first), 1
            for line in f:
                number += 1
                if not line.endswith(b"\n"):
                    break  # torn by a kill while it was written: that page was in flight
                try:
                    cls._apply(st, json.loads(line), frontier)
                except (KeyError, TypeError, ValueError, AttributeError) as e:
                    raise ValueError(f"the state file is damaged at line {number} ({e})") from None
                end += len(line)
        st.frontier = deque(frontier.values())
        st._journal = (str(path.resolve()), path.stat().st_mtime_ns)
        st._journal_end = end
        return st

    @staticmethod
    def _apply(st: CrawlState, change: dict, frontier: dict[str, tuple]) -> None:
        pages = [Page(**p) for p in change.get("pages", ())]
        st.pages.extend(pages)
        st.findings.extend(asdict(Finding(**f)) for f in change.get("findings", ()))
        st.image_contexts.extend(asdict(ImageContext(**c)) for c in change.get("image_contexts", ()))
        st.seen.update(change.get("seen", ()))
        st.checked.update(change.get("checked", ()))
        for url, depth, referrer in change.get("queued", ()):
            frontier[url] = (url, int(depth), referrer)
        for p in pages:
            frontier.pop(p.url, None)
        for url in change.get("taken", ()):
            frontier.pop(url, None)
        if "skipped" in change:
            st.skipped = {**dict.fromkeys(SKIP_REASONS, 0), **change["skipped"]}
        st.skipped_urls.extend(change.get("skipped_urls", ()))
        st.site_errors.extend(change.get("site_errors", ()))
        st.origins.extend(change.get("origins", ()))
        st.documents.update(change.get("documents") or {})
        for flag in ("seeded", "done", "limit_reached"):
            if flag in change:
                setattr(st, flag, bool(change[flag]))
