"""Text in an image, read by Tesseract (Debian's ``tesseract-ocr`` and ``tesseract-ocr-eng``, through pytesseract).

OCR costs several times the model's time per image on a CPU, so the pipeline runs it only where text is likely
(not on a confident photo). Words Tesseract is unsure of are dropped (Chromium drops OCR words under 0.7
confidence), as are strings that are not words at all; the few spurious words it reads in the texture of a photo
rarely survive both rules.
Without Tesseract the service still works: ``available()`` is False, and results say there was no text evidence.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from PIL import Image, ImageOps

log = logging.getLogger(__name__)

MIN_WORD_CONFIDENCE = 70  # Tesseract's 0-100 scale
MIN_SIDE = 400  # smaller images are upscaled: Tesseract reads text with ~20 px capitals best
_WORD = re.compile(r"[A-Za-z0-9À-ÿ]")
TITLE_BAR = 0.1  # the share of a screenshot's height, from its top, where its window's title bar is looked for
TITLE_BAR_MIN_PX = 30
_SEPARATORS = frozenset("—–-")  # between a window title's document and application: "Exercise — KBruch"


@dataclass(frozen=True)
class OcrText:
    lines: list[str] = field(default_factory=list)  # reading order, confident words only
    words: int = 0

    @property
    def text(self) -> str:
        return " ".join(self.lines)


def available(command: str | None = None) -> bool:
    try:
        import pytesseract  # noqa: F401
    except ImportError:
        return False
    return shutil.which(command or "tesseract") is not None


def _is_word(w: str) -> bool:
    letters = len(_WORD.findall(w))
    return letters >= 2 and letters >= 0.6 * len(w) or w.isdigit()


# The environment's own value, before Ocr() limits Tesseract to one OpenMP thread for every process started from
# here on: a child that is not Tesseract (the service's model process) restores it, or runs on one core.
OMP_THREAD_LIMIT_BEFORE: str | None = os.environ.get("OMP_THREAD_LIMIT")


class Ocr:
    def __init__(self, command: str = "tesseract", lang: str = "eng", timeout: float = 10.0):
        import pytesseract

        self._tess = pytesseract
        pytesseract.pytesseract.tesseract_cmd = command
        self.lang, self.timeout = lang, timeout
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # one core per call: requests already run in parallel

    def _data(self, im: Image.Image, psm: int) -> dict | None:
        """Tesseract's words of ``im`` with their boxes, confidences and lines; None when it fails (crash, timeout)."""
        try:
            return self._tess.image_to_data(im, lang=self.lang, output_type=self._tess.Output.DICT,
                                            timeout=self.timeout, config=f"--psm {psm}")
        except (RuntimeError, OSError, subprocess.CalledProcessError, self._tess.TesseractError) as e:
            # CalledProcessError: pytesseract's version check runs Tesseract first, and a broken install fails there
            log.warning("OCR failed: %s", e)
            return None

    def read_title_bar(self, im: Image.Image) -> str:
        """A screenshot's window title, "<document> — <application>", read from its top strip on its own ("" when
        none is found): a title bar is often a small grey font on grey that the whole image's read drops (KBruch's
        "Exercise — KBruch"); enlarged and stretched to full contrast it reads. Only the words in a row with the
        separator, beside each other, are the title: the menus and toolbar below it are not."""
        im = im.convert("L")
        strip = im.crop((0, 0, im.width, min(im.height, max(TITLE_BAR_MIN_PX, round(im.height * TITLE_BAR)))))
        scale = max(1.0, min(3.0, 4000 / strip.width))
        strip = ImageOps.autocontrast(strip.resize((round(strip.width * scale), round(strip.height * scale)),
                                                   Image.LANCZOS))
        d = self._data(strip, psm=11)  # sparse text: a title bar's few words, wherever they are
        if d is None:
            return ""
        words = sorted((int(d["left"][i]), int(d["top"][i]), int(d["width"][i]), int(d["height"][i]), w)
                       for i, w in enumerate(t.strip() for t in d["text"])
                       if w and float(d["conf"][i]) >= MIN_WORD_CONFIDENCE and (_is_word(w) or w in _SEPARATORS))
        return _title_around_separator(words)

    def read(self, im: Image.Image) -> OcrText:
        """Confident words of ``im``, grouped in lines. A Tesseract failure (crash, timeout) reads as no text."""
        im = im.convert("L")
        if min(im.size) < MIN_SIDE:
            scale = min(MIN_SIDE / min(im.size), 4.0)
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.BICUBIC)
        d = self._data(im, psm=3)
        if d is None:
            return OcrText()
        lines: dict[tuple, list[str]] = {}
        for text, conf, *key in zip(d["text"], d["conf"], d["block_num"], d["par_num"], d["line_num"]):
            w = text.strip()
            if w and float(conf) >= MIN_WORD_CONFIDENCE and _is_word(w):
                lines.setdefault(tuple(key), []).append(w)
        ordered = [" ".join(ws) for ws in lines.values()]
        return OcrText(ordered, sum(len(ws) for ws in lines.values()))


def _title_around_separator(words: list[tuple[int, int, int, int, str]]) -> str:
    """The run of words ((left, top, width, height, text), left to right) in the row of a separator with a word on
    either side, each at most a word's height from the next: "Exercise — KBruch"; "" when there is none."""
    for sep in (w for w in words if w[4] in _SEPARATORS):
        middle = sep[1] + sep[3] / 2
        row = [w for w in words
               if w is sep or w[4] not in _SEPARATORS and abs(w[1] + w[3] / 2 - middle) <= w[3] * 0.6]
        heights = sorted(w[3] for w in row if w is not sep)
        if not heights:
            continue
        gap, i = 1.5 * heights[len(heights) // 2], row.index(sep)
        lo = hi = i
        while lo > 0 and row[lo][0] - (row[lo - 1][0] + row[lo - 1][2]) <= gap:
            lo -= 1
        while hi < len(row) - 1 and row[hi + 1][0] - (row[hi][0] + row[hi][2]) <= gap:
            hi += 1
        if lo < i < hi:
            return " ".join(w[4] for w in row[lo:hi + 1])
    return ""
