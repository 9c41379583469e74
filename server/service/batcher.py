"""One model worker per process: request threads hand in images and wait on futures; the worker gathers whatever
is pending (up to ``max_batch`` images or ``max_wait_ms`` of waiting) and runs one batched forward pass
(``run(images) -> one result per image``: the describe pipeline's model stage).

Batching is where the throughput comes from: the encoder and the beam search cost little more for 16 images than
for one (on 2 cores a batch of 16 ran 1.2-1.4x the images/s of a batch of 8). The worker thread is the only code that
touches the model, so the model needs no locks.

Under load, clients wait for an answer and then send their next image, so a batch's clients come back together just
after it ends. Without waiting for them, the next batch takes only what queued meanwhile, and 16 clients settle into
two alternating half batches. So the worker also waits for the clients of the batch it just answered: up to
``return_wait`` of that batch's time (the model idles at most that share; the service's default is a quarter), and
only while it holds fewer images than were queued at the batch's end plus the batch's own (a lone client coming back
makes that number by itself, and waits for no one). With ``early=True`` the worker hands ``run`` a second argument,
``deliver(i, output)``, which answers image ``i``'s request at once: a client whose caption ends early in the beam
search gets it while the longer ones are still decoded, and comes back sooner.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from PIL import Image

log = logging.getLogger(__name__)


class WorkerStopped(RuntimeError):
    pass


class BatchWorker:
    def __init__(self, run: Callable[[list], list], max_batch: int = 16, max_wait_ms: float = 5.0,
                 on_batch: Callable[[int, float], None] | None = None,
                 coming: Callable[[], int] | None = None, return_wait: float = 0.0, early: bool = False):
        self.run = run
        self.early = early  # run(images, deliver): outputs may be delivered before the batch ends
        # How many images callers hold the bytes of and are decoding or preprocessing, to be submitted soon: the
        # worker waits up to max_wait_ms for them, and not at all when none is coming (a lone request pays no delay).
        # Images still on the network do not count: a slow upstream must not hold every batch for max_wait_ms.
        self.coming = coming
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.return_wait = return_wait  # share of the last batch's time to wait for its clients' next images
        self.on_batch = on_batch  # metrics hook: (batch size, seconds)
        self._queue: queue.Queue = queue.Queue()
        self._stopped = threading.Event()
        # the last batch: when it ended, how long it took, its size and how many images were queued at its end
        self._last_end, self._last_seconds, self._last_size, self._queued_at_end = 0.0, 0.0, 0, 0
        self._thread = threading.Thread(target=self._run, name="alt-text-model-worker", daemon=True)
        self._thread.start()

    def submit(self, image: Image.Image) -> Future:
        if self._stopped.is_set():
            raise WorkerStopped("the model worker has stopped")
        fut: Future = Future()
        self._queue.put((image, fut))
        return fut

    def stop(self, timeout: float = 5.0) -> None:
        """Refuse new images; caption those already submitted (a request waiting on one gets its answer), then end
        the thread. Waits at most ``timeout`` seconds for that."""
        self._stopped.set()
        self._queue.put(None)
        self._thread.join(timeout)

    def _gather(self) -> tuple[list, bool]:
        """The next batch, and whether the stop came after it (what was queued before the stop is still run)."""
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        now = time.monotonic()
        deadline = now + self.max_wait  # for images whose bytes are here (``coming``)
        # for the clients of the last batch, if it ended just now (see the module's docstring)
        returns_by = self._last_end + self.return_wait * self._last_seconds
        returning = min(self.max_batch, self._queued_at_end + self._last_size) if now < returns_by else 0
        while len(batch) < self.max_batch:
            now = time.monotonic()
            if self.coming is None:
                wait = deadline - now
            else:
                # short waits, so that a batch stops waiting as soon as nothing more is coming
                wait = min(deadline - now, 0.002) if self.coming() else 0
            if len(batch) < returning:
                wait = max(wait, min(returns_by - now, 0.002))
            try:
                item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                if wait > 0:
                    continue
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _caption(self, live: list) -> None:
        images = [im for im, _ in live]
        try:
            if self.early:
                def deliver(i: int, out) -> None:
                    if not live[i][1].done():
                        live[i][1].set_result(out)

                outputs = self.run(images, deliver)
            else:
                outputs = self.run(images)
        except Exception as e:  # handed to the waiting requests, never lost
            live = [item for item in live if not item[1].done()]  # those answered already keep their answers
            if len(live) > 1:  # the batch mixes requests: find the one image at fault, spare the others
                log.warning("batch of %d failed (%s); retrying its images one by one", len(live), e)
                for item in live:
                    self._caption([item])
                return
            if live:
                log.exception("model worker failed on an image")
                live[0][1].set_exception(e)
            return
        for (_, f), out in zip(live, outputs):
            if not f.done():
                f.set_result(out)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._gather()
            live = [(im, f) for im, f in batch if f.set_running_or_notify_cancel()]
            if not live:
                continue
            t0 = time.perf_counter()
            self._caption(live)
            seconds = time.perf_counter() - t0
            self._last_end, self._last_seconds = time.monotonic(), seconds
            self._last_size, self._queued_at_end = len(live), self._queue.qsize()
            if self.on_batch:
                self.on_batch(len(live), seconds)
        while True:  # fail whatever a submit racing with stop() queued after it
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None and item[1].set_running_or_notify_cancel():
                item[1].set_exception(WorkerStopped("the model worker has stopped"))
