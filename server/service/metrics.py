"""Prometheus metrics of the service.

Under gunicorn with several workers, each scrape reaches one random process; so ``alt-text serve`` runs
prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set before any worker starts; a worker that
exits is marked dead by gunicorn's ``child_exit`` hook, :mod:`server.service.hooks`), and ``render`` adds up every process's files: one scrape
gives coherent totals. Without that variable (tests, one process) each app has its own registry.
"""
from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class ServiceMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("alt_text_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                                registry=r)
        self.errors = Counter("alt_text_errors", "Errors by code (request-level and per image)", ["code"], registry=r)
        self.images = Counter("alt_text_images", "Images answered, by outcome", ["outcome"], registry=r)
        self.kinds = Counter("alt_text_kinds", "Images answered, by the kind the pipeline decided", ["kind"],
                             registry=r)
        self.meanings = Counter("alt_text_meanings", "Icons, logos and charts named by what they are "
                                "(meaning:search, brand:github, chart:bar)", ["meaning"], registry=r)
        self.named_by = Counter("alt_text_named_by", "Icons and logos named, by where the name came from (image: the "
                                "meaning head; text: OCR; markup: the page's code)", ["source"], registry=r)
        self.withheld = Counter("alt_text_withheld", "Images given no alt text, by reason", ["reason"], registry=r)
        self.ocr = Counter("alt_text_ocr", "Images whose text was read by OCR", registry=r)
        # The highest value of the live processes: the cache is shared, so one degraded process says it for all of
        # them, and a dead worker's value goes with it (child_exit marks it dead). Set by FailSafeCache's on_change
        # when the state changes, not at scrape time (a scrape reaches one worker, the others would never say).
        self.cache_degraded = Gauge("alt_text_cache_degraded", "1 while the result cache is failing and bypassed",
                                    registry=r, multiprocess_mode="livemax")
        self.cache = Counter("alt_text_cache", "Cache look-ups by result", ["result"], registry=r)
        self.latency = Histogram("alt_text_request_seconds", "Request latency", ["endpoint"], registry=r,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.batch_size = Histogram("alt_text_batch_size", "Images per model forward pass", registry=r,
                                    buckets=(1, 2, 4, 8, 16, 32, 64))
        self.batch_seconds = Histogram("alt_text_batch_seconds", "Model time per batch", registry=r,
                                       buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def render(self) -> bytes:
        if multiprocess():
            from prometheus_client import multiprocess as mp

            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def prepare_multiprocess_dir(path: str) -> None:
    """Empty the directory the processes write their metric files to (left-overs of a previous run would be added
    to this run's totals)."""
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))
