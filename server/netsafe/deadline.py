"""The whole-fetch deadline, and the one thread that enforces every fetch's.

Connect and read timeouts bound each wait on its own; a server that drips a byte a second (in the TLS handshake, the
headers or the body) never trips them. So each fetch registers its sockets with a :class:`Deadline`, and when it
expires the watchdog shuts them down, which wakes any blocked ``recv`` at once, mid-chunk included.
"""
from __future__ import annotations

import os
import socket
import threading
import time

from .errors import FetchError


class _Watchdog:
    """One thread that expires every fetch's deadline, instead of a timer thread per fetch: starting, cancelling
    and joining a thread for each fetch costs context switches, and each switch takes a core from the model
    process for a moment. A deadline is registered and dropped under a lock; the thread is woken only when a new
    deadline is due before the one it sleeps towards, which with one total timeout for every fetch is almost
    never."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a forked child has no thread, and maybe a held lock

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._live: set[Deadline] = set()
        self._wake_at = float("inf")  # when the thread will next look, as far as it has said
        self._started = False

    def add(self, deadline: Deadline) -> None:
        with self._cond:
            if not self._started:
                threading.Thread(target=self._run, name="fetch-deadlines", daemon=True).start()
                self._started = True
            self._live.add(deadline)
            if deadline.at < self._wake_at:
                self._wake_at = deadline.at
                self._cond.notify()

    def drop(self, deadline: Deadline) -> None:
        with self._cond:
            self._live.discard(deadline)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for d in [d for d in self._live if d.at <= now]:
                    self._live.discard(d)
                    d._expire()
                self._wake_at = min((d.at for d in self._live), default=float("inf"))
                self._cond.wait(None if self._wake_at == float("inf") else self._wake_at - now)


class Deadline:
    """The whole-fetch deadline. The watchdog shuts every registered socket down when it expires, which wakes
    any blocked recv (TLS handshake, headers, body) however slowly the server drips."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + max(seconds, 0.0)
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        WATCHDOG.add(self)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def over(self) -> bool:
        return self.expired or self.remaining() <= 0

    def check(self) -> None:
        if self.over():
            raise FetchError("deadline_exceeded", "the image server took too long to answer", 504)

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shutdown(sock)

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, *exc) -> None:
        WATCHDOG.drop(self)


WATCHDOG = _Watchdog()
