"""The settings every surface reads alike: the image limits, what is said and how sure it must be, OCR, and the
cache of describe results. One dataclass, filled from defaults, then ``ALT_TEXT_*`` environment variables, then
keyword arguments.

``alt-text file``, ``alt-text url`` and the audit's suggestions read :class:`Settings`, so that they say what the
service says; the service's own :class:`server.service.config.Config` adds what only HTTP needs (processes,
batching, admission, request limits, keys). Environment variables exist so that gunicorn workers (separate
processes) and container deployments configure everything without code; every field with a ``help`` is a flag of
``alt-text serve`` and a row of the settings table in ``docs/service.md``.
"""
from __future__ import annotations

import logging
import os
from dataclasses import MISSING, dataclass, field, fields
from typing import Self

log = logging.getLogger(__name__)


def setting(default=MISSING, help: str = "", *, factory=None):
    """A field with the help text that ``alt-text serve --help`` shows for its flag."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


def _default_cache_path() -> str:
    return os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "alt-text",
                        "service-cache.sqlite3")


@dataclass
class Settings:
    max_image_bytes: int = setting(10_000_000, "A fetched or uploaded image.")
    max_pixels: int = setting(40_000_000, "Pixels of one image.")
    fetch_timeout: float = setting(10.0, "Total deadline of one fetch, in seconds.")
    # What is said, and how sure it must be (server/describe: decision.Policy and wording.Wording; the defaults and
    # their measurements are in model/MODEL_CARD.md). Confidences are calibrated P(caption acceptable).
    withhold_below: float = setting(0.15, "Calibrated confidence under which a caption is not spoken.")
    hedge_below: float = setting(0.35, 'Calibrated confidence under which a caption is hedged ("Might be: ...").')
    photo_min: float = setting(0.6, "P(photo) a caption needs; other images are named by kind and text.")
    kind_min: float = setting(0.7, "P(kind) needed to name a non-photo kind.")
    concept_min: float = setting(0.8, 'Classifier probability to say a plain word ("a cat") instead of a caption.')
    sure_prefix: str = setting("Appears to be: ", "Words before a sure caption.")
    unsure_prefix: str = setting("Might be: ", "Words before an unsure caption or a concept.")
    says_prefix: str = setting("Appears to say: ", "Words before the text read in an image.")
    ocr: bool = setting(True, "Read text with Tesseract where text is likely (when it is installed).")
    # The cache of describe results (server/cache.py).
    cache: str = setting("sqlite", "Result cache: sqlite, redis or none.")
    cache_path: str = setting(help="SQLite cache file.", factory=_default_cache_path)
    redis_url: str | None = setting(None, "Share the cache through Redis (redis://host:6379/0).")
    cache_ttl: int = setting(7 * 24 * 3600, "Seconds a URL's answer is reused without fetching it again.")
    # TEST ONLY, never in a deployment: "127.0.0.1:PORT" origins the fetcher may reach, honoured only together with
    # ALT_TEXT_TESTING=1 (a stray variable alone opens nothing) and announced loudly at start.
    test_allow_loopback: tuple[str, ...] = ()
    testing: bool = False

    def policy(self):
        from .describe import Policy

        return Policy(withhold_below=self.withhold_below, hedge_below=self.hedge_below, photo_min=self.photo_min,
                      kind_min=self.kind_min, concept_min=self.concept_min)

    def wording(self):
        from .describe import Wording

        def text(prefix: str) -> str:  # a prefix is words, never a format field: "{" stays "{"
            return prefix.replace("{", "{{").replace("}", "}}")

        return Wording(caption_sure=text(self.sure_prefix) + "{caption}",
                       caption_unsure=text(self.unsure_prefix) + "{caption}",
                       says=text(self.says_prefix) + "“{text}”")

    def fetch_limits(self, *, test_loopback: bool = True):
        """The image limits as :class:`server.netsafe.FetchLimits`; ``test_loopback=False``: never the test
        switch (the audit, whose images a stranger's page chose)."""
        from .netsafe.limits import FetchLimits

        return FetchLimits(max_bytes=self.max_image_bytes, total_timeout=self.fetch_timeout,
                           max_pixels=self.max_pixels,
                           test_allow_loopback=self.loopback_allowed() if test_loopback else ())

    def loopback_allowed(self) -> tuple[str, ...]:
        """The test allow-list, when testing mode is on too; else nothing (and a warning that it is ignored)."""
        if not self.test_allow_loopback:
            return ()
        if not self.testing:
            log.warning("ALT_TEXT_TEST_ALLOW_LOOPBACK is set but ALT_TEXT_TESTING is not: ignored")
            return ()
        return tuple(self.test_allow_loopback)

    @classmethod
    def from_env(cls, environ=os.environ, **overrides) -> Self:
        """Defaults, overridden by ALT_TEXT_<FIELD> variables, overridden by keyword arguments (None: not given).
        Raises ValueError for a variable that is not of its field's type."""
        values = {}
        for f in fields(cls):
            raw = environ.get(f"ALT_TEXT_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _parse(raw, None if f.default is MISSING else f.default, f.name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _parse(raw: str, default, name: str):
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, tuple):
        return tuple(s.strip() for s in raw.split(",") if s.strip())
    try:
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        raise ValueError(f"ALT_TEXT_{name.upper()}={raw!r} is not a valid {type(default).__name__}") from None
    if isinstance(default, str):
        return raw  # an empty string is a value (e.g. no hedge prefix)
    return raw or None
