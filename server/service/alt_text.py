"""What happens to one image: fetch or decode it, look in the cache, and run the describe pipeline
(:mod:`server.describe`) on it, its model stage through the batching worker. What to say is decided there, once,
for every surface; this module adds only HTTP concerns (errors with status codes, timing, caching, metrics).

Each image is independent: its failure becomes an error entry, never an exception that fails its neighbours.

A request is first triaged on its own thread: images answered without the model (cached URLs and bytes, invalid
input) are answered at once; only a request with work left for the model counts against the worker's admission
(:mod:`server.service.admission`), which may refuse it with a 503 ``overloaded``. A stop drains: ``begin_drain``
refuses new requests, lets the admitted ones finish, and caps their fetches at the drain's end; a request still
waiting for the model shortly before the worker must exit gets ``shutting_down`` for those images instead of being
cut off.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import threading
import time
import weakref
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass

from ..cache import Cache, image_key
from ..describe import Describer, Evidence
from ..describe.markup import MarkupError, check_markup
from ..netsafe import FetchError, check_public_without_dns, decode_fetched, fetch_bytes
from .admission import Admission
from .batcher import BatchWorker, WorkerStopped
from .config import Config
from .metrics import ServiceMetrics

log = logging.getLogger(__name__)

REQUEST_DEADLINE = 60.0  # seconds one request may take, fetching and the model together, all its images
FETCHES_PER_CLIENT = 4  # URLs one client may have in flight at once, whatever its number of requests


# Errors that several places give, as (code, message, status): each is defined once, here.
DEADLINE_EXCEEDED = ("deadline_exceeded", "the image could not be fetched within the request's deadline", 504)
SHUTTING_DOWN = ("shutting_down", "the service is shutting down; send the request again", 503)
ABANDON_BEFORE = 5.0  # seconds before a drain's end at which images still waiting for the model are given up


@dataclass
class ImageFailure(Exception):
    code: str
    message: str
    status: int = 422


class ServiceClosing(Exception):
    """The service is draining before it stops: a new request is refused (HTTP 503, SHUTTING_DOWN)."""


@dataclass
class _Work:
    """An image the triage could not answer: a URL to fetch (``raw`` None), or uploaded bytes and their key."""
    url: str | None = None
    raw: bytes | None = None
    key: str | None = None
    markup: dict[str, str] | None = None  # what the page's code calls the image (markup.check_markup)


class AltTextService:
    def __init__(self, cfg: Config, describer: Describer, cache: Cache, metrics: ServiceMetrics, run_model=None):
        """``run_model``: the model stage, ``describer.run_model`` by default, or a ModelProcess running it in a
        child process (closed with the service)."""
        self.cfg, self.describer, self.cache, self.metrics = cfg, describer, cache, metrics
        self.runner = run_model
        self.captioner = describer.captioner
        self.device = str(getattr(run_model, "device", None) or describer.captioner.device)  # the model's
        self.model_version = self.captioner.version
        self.cache_version = describer.namespace  # model, search, pipeline version and fitted heads
        # Decoding a large image takes memory (a 40-megapixel RGBA PNG is ~160 MB while it is converted):
        # bound how many decode at once, whatever the number of request threads.
        self._decoding = threading.BoundedSemaphore(2)
        self._coming = 0  # images whose bytes are here, being decoded or preprocessed: the batching worker waits
        self._coming_lock = threading.Lock()
        self.admission = Admission(cfg.backlog, cfg.queue_seconds)

        def on_batch(size: int, seconds: float) -> None:
            metrics.observe_batch(size, seconds)
            self.admission.observe(size, seconds)

        self.worker = BatchWorker(run_model or describer.run_model, cfg.max_batch, cfg.max_wait_ms, on_batch,
                                  coming=self.coming, return_wait=cfg.return_wait, early=cfg.early_answers)
        self.limits = cfg.fetch_limits()
        # URL fetches wait on the network, so a request's URLs run on a pool (its last one on its own thread); a
        # client gets FETCHES_PER_CLIENT fetches at a time, so a few clients with slow upstreams cannot hold all of
        # the pool. Uploaded bytes never queue here.
        self.fetchers = ThreadPoolExecutor(max_workers=16, thread_name_prefix="alt-text-fetch")
        self._client_slots: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._slots_lock = threading.Lock()
        self._in_flight = 0  # describe() calls running: close() lets them finish
        self._drained = threading.Condition()
        self.closing = False
        self._drain_ends: float | None = None  # monotonic time by which a drain must be over
        self._abandoned = False  # the drain is nearly over: images still waiting for the model are given up
        self._model_futures: set[Future] = set()  # submitted, not yet answered (given up when abandoned)
        self._futures_lock = threading.Lock()

    def begin_drain(self, seconds: float) -> None:
        """Start draining (SIGTERM: the gunicorn worker calls this at once; close() otherwise): new requests are
        refused from now on (ServiceClosing, a 503); those admitted go on, their fetches cut at the drain's end; if
        some still wait for the model ABANDON_BEFORE seconds before it, those images are answered SHUTTING_DOWN.
        Never blocks; a second call changes nothing."""
        with self._drained:
            if self._drain_ends is not None:
                return
            self.closing = True
            self._drain_ends = time.monotonic() + seconds
        threading.Thread(target=self._watch_drain, name="alt-text-drain", daemon=True).start()

    def _watch_drain(self) -> None:
        give_up_at = self._drain_ends - min(ABANDON_BEFORE, (self._drain_ends - time.monotonic()) / 2)
        with self._drained:
            if self._drained.wait_for(lambda: self._in_flight == 0, max(0.0, give_up_at - time.monotonic())):
                return
            log.warning("%d requests still in flight %.0f s before the end of the drain; answering the images "
                        "still waiting for the model with shutting_down", self._in_flight,
                        self._drain_ends - time.monotonic())
        with self._futures_lock:
            self._abandoned = True
            waiting = list(self._model_futures)
        for future in waiting:
            future.cancel()  # one not yet in a batch: its request answers SHUTTING_DOWN; one in a batch finishes

    def close(self, timeout: float = REQUEST_DEADLINE) -> bool:
        """Drain, then stop (gunicorn's worker_exit): begin_drain(timeout) if no drain has begun, wait until the
        requests in flight are answered (at most until the drain's end); then the model worker (after captioning
        what it was still given), the model process and the fetch pool stop. True when no request was still in
        flight."""
        self.begin_drain(timeout)
        with self._drained:
            drained = self._drained.wait_for(lambda: self._in_flight == 0,
                                             max(0.0, self._drain_ends - time.monotonic()))
            if not drained:
                log.warning("%d requests still in flight at the end of the drain; stopping anyway", self._in_flight)
        self.worker.stop(timeout=max(1.0, self._drain_ends - time.monotonic()))
        if hasattr(self.runner, "close"):  # the model process, once the worker has run what it was given
            self.runner.close(timeout=max(1.0, self._drain_ends - time.monotonic()))
        self.fetchers.shutdown(wait=False)  # a fetch already queued still runs; its request answers it
        return drained

    def _fetch_limits(self):
        """The fetch limits; while draining, a fetch must end with the drain (the request is then answered)."""
        if self._drain_ends is None:
            return self.limits
        left = self._drain_ends - ABANDON_BEFORE - time.monotonic()
        if left <= 0.1:
            raise ImageFailure(*SHUTTING_DOWN)
        return dataclasses.replace(self.limits, total_timeout=min(self.limits.total_timeout, left))

    def coming(self) -> int:
        """Images whose bytes are here (uploaded, or fetched already) and that are being decoded or preprocessed,
        to be submitted to the model soon: the batching worker waits for these, never for images still on the
        network (a slow upstream must not hold every batch for max_wait_ms)."""
        return self._coming

    def _count_coming(self, n: int) -> None:
        with self._coming_lock:
            self._coming += n

    # -- one image ---------------------------------------------------------------------------------------------

    def _triage(self, spec) -> dict | _Work:
        """What the request thread answers at once, without fetching, decoding or the model (a result for a URL or
        uploaded bytes in the cache, an error for invalid input), or the work left for this image."""
        try:
            markup = self._markup(spec)
            work = self._bytes(spec, fetch=False)
            if isinstance(work, dict):
                self.metrics.cache.labels("hit").inc()
                return self._result(work, cached=True, markup=markup)
            if work.raw is not None:  # uploaded bytes: the cache is keyed by them, no need to decode them first
                hit = self.cache.get(work.key)
                if hit:
                    self.metrics.cache.labels("hit").inc()
                    return self._result(hit, cached=True, markup=markup)
            work.markup = markup
            return work
        except ImageFailure as e:
            return self._error(e.code, e.message, e.status)
        except Exception:  # a bug must not take the other images down with it
            log.exception("unexpected failure triaging an image")
            return self._error("internal_error", "the image could not be processed", 500)

    @staticmethod
    def _markup(spec) -> dict[str, str] | None:
        """The spec's ``markup`` (names the page's code gives the image, when it is a control's icon), checked."""
        if isinstance(spec, _Work):
            return spec.markup
        if not isinstance(spec, dict) or spec.get("markup") is None:
            return None
        try:
            return check_markup(spec["markup"])
        except MarkupError as e:
            raise ImageFailure("invalid_markup", str(e), 400) from None

    def _bytes(self, spec, fetch: bool = True) -> bytes | dict | _Work:
        """The image's bytes (fetched, or decoded from base64), or a finished result when the URL is in the cache;
        ``fetch=False``: a _Work instead of fetching (or of the uploaded bytes), after the same checks."""
        if isinstance(spec, _Work):
            return spec.raw if spec.raw is not None else self._fetch(spec.url)
        if not isinstance(spec, dict):
            raise ImageFailure("invalid_image", "each image must be an object with a 'url' or a 'data' field", 400)
        url, data = spec.get("url"), spec.get("data")
        if (url is None) == (data is None):
            raise ImageFailure("invalid_image", "give exactly one of 'url' and 'data'", 400)
        if url is not None:
            if not isinstance(url, str) or not url.strip():
                raise ImageFailure("invalid_url", "'url' must be a non-empty string", 400)
            try:
                # A malformed or non-http URL, or a private address that needs no DNS to tell, is refused before
                # the cache could answer for it, as cheaply as a cached one is answered.
                check_public_without_dns(url, self.limits)
                hit = self.cache.get_url(url, self.cache_version)
            except FetchError as e:
                raise ImageFailure(e.code, e.message, e.status) from None
            if hit:
                return hit
            return self._fetch(url) if fetch else _Work(url=url)
        if not isinstance(data, str):
            raise ImageFailure("invalid_data", "'data' must be a base64 string", 400)
        if len(data) > self.cfg.max_image_bytes * 4 // 3 + 4:
            raise ImageFailure("too_large", f"the image is larger than {self.cfg.max_image_bytes:,} bytes", 413)
        if data.startswith("data:"):  # a data: URL: keep what follows the comma
            _, comma, data = data.partition(",")
            if not comma:
                raise ImageFailure("invalid_data", "'data' is a data: URL without a payload", 400)
        try:
            raw = base64.b64decode("".join(data.split()), validate=True)  # line-wrapped base64 is fine
        except (binascii.Error, ValueError):
            raise ImageFailure("invalid_data", "'data' is not valid base64", 400) from None
        return raw if fetch else _Work(raw=raw, key=image_key(raw, self.cache_version))

    def _fetch(self, url: str) -> bytes:
        """Not under the decode bound: fetches wait on the network."""
        if self._abandoned:
            raise ImageFailure(*SHUTTING_DOWN)
        try:
            return fetch_bytes(url, self._fetch_limits())[0]
        except FetchError as e:
            raise ImageFailure(e.code, e.message, e.status) from None

    def _decode(self, raw: bytes):
        with self._decoding:
            try:
                return decode_fetched(raw, self.cfg.max_pixels)
            except FetchError as e:
                raise ImageFailure(e.code, e.message, e.status) from None

    def _prepare(self, spec, deadline: float = float("inf"), counted: bool = False) -> dict | tuple:
        """A finished result, or (cache key, model future, url, image, pixel stats, markup), for a spec or the _Work
        its triage left. The image counts as coming (see ``coming``) from when its bytes are here until it is submitted
        or has failed; ``counted``: the caller counted it already (uploaded bytes, counted for the whole request at
        once)."""
        coming = counted
        try:
            markup = self._markup(spec)
            raw = self._bytes(spec)  # a URL is fetched here: it is not coming while it waits on the network
            if isinstance(raw, dict):
                self.metrics.cache.labels("hit").inc()
                return self._result(raw, cached=True, markup=markup)
            if not coming:
                self._count_coming(1)
                coming = True
            image = self._decode(raw)
            uploaded = isinstance(spec, _Work) and spec.key is not None  # its triage looked the key up already
            key = spec.key if uploaded else image_key(raw, self.cache_version)
            url = spec.url if isinstance(spec, _Work) else spec.get("url")
            hit = None if uploaded else self.cache.get(key)
            if hit:
                self.metrics.cache.labels("hit").inc()
                if url:
                    self.cache.put_url(url, self.cache_version, key)
                return self._result(hit, cached=True, markup=markup)
            self.metrics.cache.labels("miss").inc()
            if time.monotonic() > deadline:  # its request has answered already: no model work for nobody
                return self._error(*DEADLINE_EXCEEDED)
            # Resize and normalise here, on the request's thread: the model's worker runs only the network.
            model_input, pixels = self.describer.prepare(image), self.describer.look(image)
            return key, self._submit(model_input), url, image, pixels, markup
        except ImageFailure as e:
            return self._error(e.code, e.message, e.status)
        except WorkerStopped:  # only when close() gave up waiting for this request
            return self._error(*SHUTTING_DOWN)
        except Exception:  # a bug must not take the other images down with it
            log.exception("unexpected failure preparing an image")
            return self._error("internal_error", "the image could not be processed", 500)
        finally:
            if coming:
                self._count_coming(-1)

    def _submit(self, model_input) -> Future:
        """Hand the image to the batching worker; WorkerStopped once the drain has given up waiting images."""
        with self._futures_lock:
            if self._abandoned:
                raise WorkerStopped("the service is shutting down")
            future = self.worker.submit(model_input)
            self._model_futures.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future) -> None:
        with self._futures_lock:
            self._model_futures.discard(future)

    def _result(self, stored: dict, cached: bool, markup: dict[str, str] | None = None) -> dict:
        """The pipeline's decision on stored evidence (fresh or cached: thresholds and wording apply either way) and
        the request's markup names (they are the page's, not the image's: never cached with it)."""
        return {**self.describer.decide(Evidence.from_dict(stored), markup), "cached": cached,
                "model": self.model_version}

    def _error(self, code: str, message: str, status: int) -> dict:
        return {"error": {"code": code, "message": message, "status": status}}

    def _count(self, results: list[dict]) -> None:
        """The metrics of the images a request answers, once it answers them: a request refused after its cached
        images were looked up (overloaded) answered none of them."""
        m = self.metrics
        for r in results:
            if "error" in r:
                m.errors.labels(r["error"]["code"]).inc()
                m.images.labels("error").inc()
                continue
            m.images.labels("withheld" if r["withheld"] else "hedged" if r["hedged"] else "described").inc()
            m.kinds.labels(r["kind"]).inc()
            for field in ("meaning", "brand", "chart_type"):  # "meaning:search", "brand:github", "chart:bar"
                if r[field]:
                    m.meanings.labels(f"{field.removesuffix('_type')}:{r[field]['id']}").inc()
                    if r[field].get("source"):  # meanings and brands: where the name came from
                        m.named_by.labels(r[field]["source"]).inc()
            if r["withheld"]:
                m.withheld.labels(r["reason"] or "none").inc()

    # -- a request ---------------------------------------------------------------------------------------------

    def _slots(self, client: str) -> threading.BoundedSemaphore:
        with self._slots_lock:  # a client's semaphore lives as long as one of its requests holds it
            slots = self._client_slots.get(client)
            if slots is None:
                slots = self._client_slots[client] = threading.BoundedSemaphore(FETCHES_PER_CLIENT)
            return slots

    def _start(self, specs: list, client: str, deadline: float) -> list:
        """Each spec's preparation: uploaded bytes decoded here, on the request thread (nothing to wait for);
        URLs fetched within the client's share of the fetch slots, all but the last on the pool, the last here,
        where the request would only wait for it (one handover less per image: a request of one URL, the usual
        one, needs no pool thread). Items are results, prepared tuples or futures."""
        slots = self._slots(client)

        def fetch(spec):
            try:
                return self._prepare(spec, deadline)
            finally:
                slots.release()

        items: list = [None] * len(specs)
        urls = [i for i, s in enumerate(specs) if (s.url if isinstance(s, _Work) else
                                                   isinstance(s, dict) and s.get("url")) is not None]
        uploads = sorted(set(range(len(specs))) - set(urls))
        self._count_coming(len(uploads))  # their bytes are here: the batch they join may wait for all of them
        for i in uploads:
            items[i] = self._prepare(specs[i], counted=True)
        for n, i in enumerate(urls, 1):
            ends = deadline if self._drain_ends is None else min(deadline, self._drain_ends - ABANDON_BEFORE)
            if not slots.acquire(timeout=max(0.0, ends - time.monotonic())):
                items[i] = self._error(*(DEADLINE_EXCEEDED if ends == deadline else SHUTTING_DOWN))
                continue
            if n == len(urls):
                items[i] = fetch(specs[i])
                break
            try:
                items[i] = self.fetchers.submit(fetch, specs[i])
            except RuntimeError:  # the pool is shut down: only when close() gave up waiting for this request
                slots.release()
                items[i] = self._error(*SHUTTING_DOWN)
        return items

    def describe(self, specs: list, client: str = "") -> list[dict]:
        """One result per spec, in order. ``client`` (an API key or address) shares the fetch pool fairly; the
        deadline covers fetching and the model; captioning is batched by the worker. Raises ServiceClosing once
        close() has begun; a request already running is let finish."""
        with self._drained:
            if self.closing:
                raise ServiceClosing()
            self._in_flight += 1
        try:
            t0 = time.perf_counter()
            results = [self._triage(spec) for spec in specs]
            for r in results:
                if isinstance(r, dict):
                    r["elapsed_ms"] = round(1000 * (time.perf_counter() - t0), 1)
            todo = [i for i, r in enumerate(results) if isinstance(r, _Work)]
            if todo:
                self.admission.admit(len(todo))  # or Overloaded: a 503 with Retry-After
                try:
                    for i, r in zip(todo, self._describe([results[i] for i in todo], client, t0)):
                        results[i] = r
                finally:
                    self.admission.release(len(todo))
            self._count(results)
            return results
        finally:
            with self._drained:
                self._in_flight -= 1
                if not self._in_flight:
                    self._drained.notify_all()

    def _describe(self, specs: list, client: str, t0: float) -> list[dict]:
        deadline = time.monotonic() + REQUEST_DEADLINE
        results = []
        for p in self._start(specs, client, deadline):
            if isinstance(p, Future):
                try:
                    p = p.result(timeout=max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    p = self._error(*DEADLINE_EXCEEDED)
                except CancelledError:
                    p = self._error(*SHUTTING_DOWN)
            if isinstance(p, tuple):
                key, model_future, url, image, pixels, markup = p
                try:
                    out = model_future.result(timeout=max(0.0, deadline - time.monotonic()))
                    evidence = self.describer.gather(pixels, out, image)  # OCR, when text is likely, runs here
                except TimeoutError:
                    model_future.cancel()  # the worker skips it if it has not started yet
                    p = self._error("model_timeout", "the model did not answer in time", 503)
                except (WorkerStopped, CancelledError):  # the drain gave it up, or the worker stopped
                    p = self._error(*SHUTTING_DOWN)
                except Exception:
                    log.exception("describing failed")
                    p = self._error("model_error", "the model failed on this image", 500)
                else:
                    if evidence.ocr == "read":
                        self.metrics.ocr.inc()
                    stored = evidence.to_dict()
                    self.cache.put(key, stored)
                    if url:
                        self.cache.put_url(url, self.cache_version, key)
                    p = self._result(stored, cached=False, markup=markup)
            p["elapsed_ms"] = round(1000 * (time.perf_counter() - t0), 1)
            results.append(p)
        return results
