"""Service configuration: one dataclass, filled from defaults, then ``ALT_TEXT_*`` environment variables, then flags.

Environment variables exist so that gunicorn workers (separate processes) and container deployments configure the
app without code; every field is documented in the README's server section.
"""
from __future__ import annotations

import logging
import os
from dataclasses import MISSING, dataclass, field, fields

log = logging.getLogger(__name__)
DRAIN_SLACK = 10.0  # seconds of a stop beyond the longest admitted wait: the last batch and the worker's exit


def setting(default=MISSING, help: str = "", *, factory=None):
    """A Config field with the help text that ``alt-text serve --help`` shows for its flag."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


def _default_cache_path() -> str:
    return os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "alt-text",
                        "service-cache.sqlite3")


@dataclass
class Config:
    checkpoint: str | None = setting(None, "Model checkpoint (default: the bundled model).")
    device: str | None = setting(None, "cpu, cuda, cuda:1 (default: CUDA when present).")
    beam_size: int = setting(3, "Beam width; 1 is greedy decoding.")
    torch_threads: int = setting(0, "CPU threads of the model in each process (0: the cores divided by "
                                    "the workers; at least 1).")
    max_batch: int = setting(16, "Images per forward pass.")
    max_wait_ms: float = setting(20.0, "How long the model worker waits to fill a batch, while more images are "
                                       "being decoded or preprocessed (not while they are fetched; a lone request "
                                       "does not wait).")
    return_wait: float = setting(0.25, "Share of a batch's time the model worker then waits for that batch's "
                                       "clients to send their next images, to batch them together (0: never).")
    early_answers: bool = setting(True, "Answer an image as soon as its caption is done, while the batch's longer "
                                        "captions are still decoded (off: when the whole batch is done).")
    model_process: bool = setting(True, "Run the model in a child process of each worker, where its Python never "
                                        "waits for the request threads' GIL (off: a thread of the worker).")
    max_images: int = setting(16, "Images per request (published at /v1/limits).")
    max_body_bytes: int = setting(20_000_000, "Request body, base64 images included.")
    max_image_bytes: int = setting(10_000_000, "A fetched or uploaded image.")
    max_pixels: int = setting(40_000_000, "Pixels of one image.")
    fetch_timeout: float = setting(10.0, "Total deadline of one fetch, in seconds.")
    # Admission (server/service/admission.py and docs/serving.md): what a worker accepts to wait for the model.
    backlog: int = setting(1024, "Images per worker that may wait for fetching or the model at once, each request "
                                 "on a thread of its own beside the --threads ones; beyond it a request that needs "
                                 "the model gets a 503 (overloaded, with Retry-After). Cached and invalid images "
                                 "never wait for these.")
    queue_seconds: float = setting(30.0, "Longest wait for the model a request is admitted to: when the images "
                                         "ahead of it would take longer at the model's recent pace, a request that "
                                         "needs the model gets a 503 (overloaded, with Retry-After). A stop "
                                         "(SIGTERM) waits this long plus the fetch timeout and 10 s.")
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
    cache: str = setting("sqlite", "Result cache: sqlite, redis or none.")
    cache_path: str = setting(help="SQLite cache file.", factory=_default_cache_path)
    redis_url: str | None = setting(None, "Share the cache through Redis (redis://host:6379/0).")
    cache_ttl: int = setting(7 * 24 * 3600, "Seconds a URL's answer is reused without fetching it again.")
    cache_retry: float = setting(30.0, "Seconds a failing cache is bypassed before it is tried again.")
    cors_origins: tuple[str, ...] = setting((), "Web origins allowed besides the browser extensions.")
    api_keys: tuple[str, ...] = setting((), "When set, requests need one of these in the X-API-Key header.")
    rate_limit: int = setting(120, "Images per minute per client (API key or address), in Redis when redis_url "
                                   "is set; 0 disables.")
    trusted_proxies: int = setting(0, "Reverse proxies in front: the client address comes from X-Forwarded-For.")
    # TEST ONLY, never in a deployment: "127.0.0.1:PORT" origins the fetcher may reach, honoured only together with
    # ALT_TEXT_TESTING=1 (a stray variable alone opens nothing) and announced loudly at start.
    test_allow_loopback: tuple[str, ...] = ()
    testing: bool = False
    load_model: bool = True  # False: start without a model (tests of the HTTP layer)

    def graceful_timeout(self) -> float:
        """Seconds a stopping worker gives the requests it accepted (gunicorn's graceful timeout): an admitted
        request waits at most ``queue_seconds`` for the model after its fetch (``fetch_timeout``); the rest is for
        its own batch and the worker's exit."""
        return self.queue_seconds + self.fetch_timeout + DRAIN_SLACK

    def limits(self) -> dict:
        """The request limits clients must respect, as ``GET /v1/limits`` publishes them (the CLI, the audit and
        the extension read them instead of assuming the defaults)."""
        return {"max_images": self.max_images, "max_body_bytes": self.max_body_bytes,
                "max_image_bytes": self.max_image_bytes, "max_pixels": self.max_pixels}

    def policy(self):
        from ..describe import Policy

        return Policy(withhold_below=self.withhold_below, hedge_below=self.hedge_below, photo_min=self.photo_min,
                      kind_min=self.kind_min, concept_min=self.concept_min)

    def wording(self):
        from ..describe import Wording

        def text(prefix: str) -> str:  # a prefix is words, never a format field: "{" stays "{"
            return prefix.replace("{", "{{").replace("}", "}}")

        return Wording(caption_sure=text(self.sure_prefix) + "{caption}",
                       caption_unsure=text(self.unsure_prefix) + "{caption}", says=text(self.says_prefix) + "“{text}”")

    def fetch_limits(self):
        from ..netsafe.fetch import FetchLimits

        return FetchLimits(max_bytes=self.max_image_bytes, total_timeout=self.fetch_timeout,
                           max_pixels=self.max_pixels, test_allow_loopback=self.loopback_allowed())

    def loopback_allowed(self) -> tuple[str, ...]:
        """The test allow-list, when testing mode is on too; else nothing (and a warning that it is ignored)."""
        if not self.test_allow_loopback:
            return ()
        if not self.testing:
            log.warning("ALT_TEXT_TEST_ALLOW_LOOPBACK is set but ALT_TEXT_TESTING is not: ignored")
            return ()
        return tuple(self.test_allow_loopback)

    @classmethod
    def from_env(cls, environ=os.environ, **overrides) -> Config:
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
