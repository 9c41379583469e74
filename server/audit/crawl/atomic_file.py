"""Files that readers (and a crash) see whole or not at all: reports and crawl states."""
from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Iterable


def _file_mode(path: Path) -> int:
    """The mode a new file gets from open(): 0666 less the umask; an existing file keeps its own."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        pass
    with _umask_lock:
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


_umask_lock = threading.Lock()


def write_atomic(path: str | Path, text: str | Iterable[str]) -> None:
    """Write a file so that readers (and a crash) see the old or the new content, never half of one. ``text`` is
    a string or an iterable of strings (a report streamed piece by piece)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _file_mode(path))  # mkstemp's 0600 would make a report only its writer can read
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace", newline="") as f:
            for piece in (text,) if isinstance(text, str) else text:
                f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
