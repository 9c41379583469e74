"""The threads that fetch and check pages (and images) while the calling thread records them."""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future


class WorkerPool:
    """A fixed set of daemon threads. Unlike ThreadPoolExecutor, whose threads the interpreter joins at exit, an
    interrupted audit exits at once instead of waiting for the requests still in flight."""

    def __init__(self, n: int, name: str = "audit"):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True) for i in range(n)]
        for t in self._threads:
            t.start()

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        self._queue.put((fut, fn, args))
        return fut

    def _loop(self) -> None:
        while True:
            fut, fn, args = self._queue.get()
            if fut is None:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001 - handed to whoever waits on the future
                fut.set_exception(e)

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put((None, None, None))

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
