"""Service configuration: one dataclass, filled from defaults, then ``ALT_TEXT_*`` environment variables, then flags.

Environment variables exist so that gunicorn workers (separate processes) and container deployments configure the
app without code; every field is documented in the README's server section.
"""
from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields


@dataclass
class Config:
    checkpoint: str | None = None  # None: the bundled model
    device: str | None = None  # None: CUDA when present, else CPU
    beam_size: int = 3
    max_batch: int = 16  # images per forward pass
    max_wait_ms: float = 5.0  # how long the worker waits to fill a batch
    max_images: int = 16  # images per request
    max_body_bytes: int = 20_000_000  # request body (base64 images included)
    max_image_bytes: int = 10_000_000  # fetched or uploaded image
    max_pixels: int = 40_000_000
    fetch_timeout: float = 10.0  # total deadline of one fetch
    # What is said, and how sure it must be (server/describe: decision.Policy and wording.Wording; the defaults and
    # their measurements are in model/MODEL_CARD.md). Confidences are calibrated P(caption acceptable).
    withhold_below: float = 0.15  # a caption under this confidence is not spoken
    hedge_below: float = 0.35  # under this it is hedged more strongly ("Might be: ...")
    photo_min: float = 0.6  # P(photo) a caption needs; other images are named by kind and text
    kind_min: float = 0.4  # P(kind) needed to name a non-photo kind
    concept_min: float = 0.8  # ImageNet probability for a plain word ("a cat") instead of an unsure caption
    sure_prefix: str = "Appears to be: "
    unsure_prefix: str = "Might be: "
    says_prefix: str = "Appears to say: "
    ocr: bool = True  # read text with Tesseract where text is likely (when it is installed)
    cache: str = "sqlite"  # "sqlite", "redis" or "none"
    cache_path: str = field(default_factory=lambda: os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "alt-text", "service-cache.sqlite3"))
    redis_url: str | None = None
    cache_ttl: int = 7 * 24 * 3600  # seconds a URL's answer is reused without fetching it again
    cors_origins: tuple[str, ...] = ()  # web origins allowed besides the browser extensions
    api_keys: tuple[str, ...] = ()  # when set, requests need one in the X-API-Key header
    rate_limit: int = 120  # requests per minute per client (API key or address); 0 disables
    trusted_proxies: int = 0  # reverse proxies in front: the client address is taken from X-Forwarded-For
    test_allow_loopback: tuple[str, ...] = ()  # TEST ONLY: "127.0.0.1:PORT" origins the fetcher may reach
    load_model: bool = True  # False: start without a model (tests of the HTTP layer)

    def limits(self) -> dict:
        """The request limits clients must respect, as ``GET /v1/limits`` publishes them (the CLI, the audit and
        the extension read them instead of assuming the defaults)."""
        return {"max_images": self.max_images, "max_body_bytes": self.max_body_bytes,
                "max_image_bytes": self.max_image_bytes, "max_pixels": self.max_pixels}

    def policy(self):
        from .describe import Policy

        return Policy(withhold_below=self.withhold_below, hedge_below=self.hedge_below, photo_min=self.photo_min,
                      kind_min=self.kind_min, concept_min=self.concept_min)

    def wording(self):
        from .describe import Wording

        return Wording(caption_sure=self.sure_prefix + "{caption}", caption_unsure=self.unsure_prefix + "{caption}",
                       says=self.says_prefix + "“{text}”")

    def fetch_limits(self):
        from .fetch import FetchLimits

        return FetchLimits(max_bytes=self.max_image_bytes, total_timeout=self.fetch_timeout,
                           max_pixels=self.max_pixels, test_allow_loopback=tuple(self.test_allow_loopback))

    @classmethod
    def from_env(cls, environ=os.environ, **overrides) -> "Config":
        """Defaults, overridden by ALT_TEXT_<FIELD> variables, overridden by keyword arguments."""
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
