"""The benchmarks' image site and clients: one asyncio thread for both, so the harness takes little from the
service it measures.

The benchmarks run the service, the site it fetches images from and the clients that ask it on the same machine
(2 cores here). Every millisecond the harness spends is taken from the service, and each of its thread wake-ups
takes a core from one of the model's two threads, whose partner then waits for it at the next barrier. Clients
in 16 threads with ``requests`` and ``http.server``'s thread per connection cost 3.2-4.1 ms of CPU per image;
this costs 1.0-1.6 ms (side by side against the same service in 6 rounds of 192 images, and in bench_server's
runs). Real clients and image hosts are other machines. The HTTP spoken is the small part of HTTP/1.1 the service
and its fetcher use: keep-alive with Content-Length, ``Connection: close`` honoured.
"""
from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from pathlib import Path

_MIME = {".jpg": b"image/jpeg", ".jpeg": b"image/jpeg", ".png": b"image/png", ".gif": b"image/gif",
         ".webp": b"image/webp", ".svg": b"image/svg+xml", ".html": b"text/html"}


class _Loop:
    """An event loop in a daemon thread: the site and every client run on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="loadgen", daemon=True).start()

    def run(self, coro, timeout: float | None = None):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


_LOOP: _Loop | None = None
_LOOP_LOCK = threading.Lock()


def _loop() -> _Loop:
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None:
            _LOOP = _Loop()
        return _LOOP


class Site:
    """Serves the files of one directory (GET, by name) on 127.0.0.1; ``address`` is ``127.0.0.1:PORT``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).resolve()
        self._server = _loop().run(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def _body(self, target: str) -> tuple[bytes, bytes] | None:
        path = (self.directory / target.split("?", 1)[0].lstrip("/")).resolve()
        if path.parent != self.directory or not path.is_file():
            return None
        return path.read_bytes(), _MIME.get(path.suffix.lower(), b"application/octet-stream")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
                found = self._body(target) if method == "GET" else None
                if found is None:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                else:
                    body, mime = found
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                                 % (mime, len(body), body))
                await writer.drain()
                if b"\r\nconnection: close" in head.lower():
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass  # the fetcher hung up, or sent something this site does not speak
        finally:
            writer.close()

    def shutdown(self) -> None:
        _loop().run(self._close(), timeout=10)

    async def _close(self) -> None:
        # On the loop's thread: asyncio's Server is not thread-safe, and a close() from another thread races the
        # loop detaching the last connection (both wake the waiters; the second finds None: a TypeError in CI).
        self._server.close()
        await self._server.wait_closed()


def start_site(directory: Path) -> tuple[Site, str]:
    site = Site(directory)
    return site, site.address


class Closed(ConnectionError):
    """The service closed a fresh connection without answering the request written on it."""


class _Client:
    """One keep-alive connection that POSTs JSON and reads the JSON answer; reconnects when the service closes.

    A request written on a kept-alive connection that the service closed meanwhile (it may close idle ones at any
    time, RFC 9112 section 9.3) is sent once more on a new connection, as HTTP clients do; ``retries`` counts those.
    On a fresh connection, a refused connect raises ConnectionRefusedError and a close without an answer Closed."""

    def __init__(self, base: str) -> None:
        host, _, port = base.removeprefix("http://").rstrip("/").rpartition(":")
        self.host, self.port = host, int(port)
        self.reader = self.writer = None
        self.retries = 0

    async def post(self, path: str, payload: dict) -> tuple[int, dict]:
        status, _, answer = await self.send(path, payload)
        return status, answer

    async def send(self, path: str, payload: dict) -> tuple[int, dict, dict]:
        """(status, headers with lower-case names, JSON body) of one POST."""
        body = json.dumps(payload).encode()
        request = (b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                   % (path.encode(), self.host.encode(), self.port, len(body), body))
        for attempt in (1, 2):
            fresh = self.writer is None
            if fresh:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            try:
                self.writer.write(request)
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as e:
                self.close()
                if fresh:
                    raise Closed(f"closed without an answer ({type(e).__name__})") from None
                self.retries += 1
                continue
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            data = await self.reader.readexactly(int(headers.get("content-length", 0)))
            if headers.get("connection", "").lower() == "close":
                self.close()
            return int(lines[0].split(" ", 2)[1]), headers, json.loads(data) if data else {}
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _drive(bases: list[str], urls: list[str], clients: int, timeout: float) -> tuple[list, float]:
    jobs = iter(enumerate(urls))
    out = []

    async def client() -> None:
        conns = {b: _Client(b) for b in bases}
        try:
            for i, url in jobs:
                base = bases[i % len(bases)]
                t = time.perf_counter()
                _, answer = await asyncio.wait_for(conns[base].post("/v1/alt-text", {"images": [{"url": url}]}),
                                                   timeout)
                res = answer["results"][0]
                out.append((time.perf_counter() - t, "error" not in res, res.get("cached", False)))
        finally:
            for c in conns.values():
                c.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return out, time.perf_counter() - t0


def drive(base: str | list[str], urls: list[str], clients: int, timeout: float = 120) -> dict:
    """Each of ``clients`` closed-loop clients sends the next URL, one per request, until none are left
    (round-robin over several bases, as a load balancer would); returns throughput and latencies."""
    bases = [base] if isinstance(base, str) else list(base)
    out, wall = _loop().run(_drive(bases, urls, clients, timeout))
    lat = sorted(x[0] for x in out)
    return {"requests": len(out), "ok": sum(x[1] for x in out), "cached": sum(x[2] for x in out),
            "seconds": round(wall, 2), "images_per_s": round(len(out) / wall, 2),
            "p50_ms": round(1000 * statistics.median(lat), 1),
            "p95_ms": round(1000 * lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1)}
