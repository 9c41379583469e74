"""The service's configuration: the shared :class:`server.settings.Settings` (image limits, what is said, OCR, the
cache) plus what only HTTP needs (the model's processes and batching, admission, request limits, the cache's
breaker, CORS, API keys, the rate limit, proxies), filled the same way: defaults, then ``ALT_TEXT_*`` environment
variables, then flags. Every field with a ``help`` is a flag of ``alt-text serve`` (``server/cli.py``) and a row of
the settings table in ``docs/service.md``.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..settings import Settings, setting

DRAIN_SLACK = 10.0  # seconds of a stop beyond the longest admitted wait: the last batch and the worker's exit


@dataclass
class Config(Settings):
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
    # Admission (server/service/admission.py and docs/serving.md): what a worker accepts to wait for the model.
    backlog: int = setting(1024, "Images per worker that may wait for fetching or the model at once, each request "
                                 "on a thread of its own beside the --threads ones; beyond it a request that needs "
                                 "the model gets a 503 (overloaded, with Retry-After). Cached and invalid images "
                                 "never wait for these.")
    queue_seconds: float = setting(30.0, "Longest wait for the model a request is admitted to: when the images "
                                         "ahead of it would take longer at the model's recent pace, a request that "
                                         "needs the model gets a 503 (overloaded, with Retry-After). A stop "
                                         "(SIGTERM) waits this long plus the fetch timeout and 10 s.")
    cache_retry: float = setting(30.0, "Seconds a failing cache is bypassed before it is tried again.")
    cors_origins: tuple[str, ...] = setting((), "Web origins allowed besides the browser extensions.")
    api_keys: tuple[str, ...] = setting((), "When set, requests need one of these in the X-API-Key header.")
    rate_limit: int = setting(120, "Images per minute per client (API key or address), in Redis when redis_url "
                                   "is set; 0 disables.")
    trusted_proxies: int = setting(0, "Reverse proxies in front: the client address comes from X-Forwarded-For.")
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
