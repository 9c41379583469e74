"""The cache of describe results, for the service and the audit: image content hash + namespace -> a JSON object
(the describe pipeline's evidence; the audit's suggestions and thumbnails), plus a URL index with a TTL.

Keying on the bytes (not the URL) means the same picture under many URLs is described once, and a new model or
pipeline (the namespace: model, beam, pipeline version, fitted heads) never serves an old one's evidence. The URL
index lets a repeated URL skip the fetch entirely until its TTL runs out. SQLite is the default (embedded, survives
restarts, shared by gunicorn workers through WAL); Redis lets several replicas share one cache. The settings that
choose one are :class:`server.settings.Settings`' ``cache``, ``cache_path``, ``redis_url`` and ``cache_ttl``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


def image_key(data: bytes, model_version: str) -> str:
    return f"{hashlib.sha256(data).hexdigest()}:{model_version}"


def url_key(url: str, model_version: str) -> str:
    return f"{hashlib.sha256(url.encode()).hexdigest()}:{model_version}"


class Cache(Protocol):
    def get(self, key: str) -> dict | None: ...
    def put(self, key: str, value: dict) -> None: ...
    def get_url(self, url: str, model_version: str) -> dict | None: ...
    def put_url(self, url: str, model_version: str, key: str) -> None: ...


class NoCache:
    def get(self, key):
        return None

    def put(self, key, value):
        pass

    def get_url(self, url, model_version):
        return None

    def put_url(self, url, model_version, key):
        pass


class SQLiteCache:
    """One connection per thread (sqlite3 connections must not be shared across threads). Expired URL entries
    and the oldest results beyond ``max_results`` are pruned every ``prune_every`` writes."""

    prune_every = 1000
    busy_timeout = 0.5  # seconds a call waits for a lock held by another process

    def __init__(self, path: str | Path, ttl: int, max_results: int = 500_000):
        self.path, self.ttl, self.max_results = str(path), ttl, max_results
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._writes = 0
        self._conn()

    def _conn(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # A short busy timeout: a locked or broken cache must cost milliseconds, not stall requests.
            db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            # Created per connection: a ":memory:" database is private to its connection.
            db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS urls (key TEXT PRIMARY KEY, result_key TEXT NOT NULL, "
                       "expires REAL NOT NULL)")
            self._local.db = db
        return db

    def _wrote(self) -> None:
        self._writes += 1
        if self._writes % self.prune_every == 0:
            self.prune()

    def prune(self) -> None:
        db = self._conn()
        db.execute("DELETE FROM urls WHERE expires < ?", (time.time(),))
        # rowid grows with insertion: the oldest results go first (they are recomputed if asked again)
        db.execute("DELETE FROM results WHERE rowid <= (SELECT MAX(rowid) FROM results) - ?", (self.max_results,))

    def get(self, key: str) -> dict | None:
        row = self._conn().execute("SELECT value FROM results WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: dict) -> None:
        self._conn().execute("INSERT OR REPLACE INTO results (key, value) VALUES (?, ?)", (key, json.dumps(value)))
        self._wrote()

    def get_url(self, url: str, model_version: str) -> dict | None:
        row = self._conn().execute(
            "SELECT r.value FROM urls u JOIN results r ON r.key = u.result_key WHERE u.key = ? AND u.expires > ?",
            (url_key(url, model_version), time.time())).fetchone()
        return json.loads(row[0]) if row else None

    def put_url(self, url: str, model_version: str, key: str) -> None:
        self._conn().execute("INSERT OR REPLACE INTO urls (key, result_key, expires) VALUES (?, ?, ?)",
                             (url_key(url, model_version), key, time.time() + self.ttl))
        self._wrote()


class RedisCache:
    """Results never expire on their own (Redis' maxmemory policy evicts them); URL entries expire after the TTL."""

    prefix = "alt-text:"

    def __init__(self, url: str, ttl: int):
        import redis

        self.ttl = ttl
        self.db = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.db.ping()  # fail at start-up, not on the first request

    def get(self, key: str) -> dict | None:
        raw = self.db.get(self.prefix + "r:" + key)
        return json.loads(raw) if raw else None

    def put(self, key: str, value: dict) -> None:
        self.db.set(self.prefix + "r:" + key, json.dumps(value))

    def get_url(self, url: str, model_version: str) -> dict | None:
        result_key = self.db.get(self.prefix + "u:" + url_key(url, model_version))
        return self.get(result_key.decode()) if result_key else None

    def put_url(self, url: str, model_version: str, key: str) -> None:
        self.db.set(self.prefix + "u:" + url_key(url, model_version), key, ex=self.ttl)


class FailSafeCache:
    """The cache is an optimisation: when it fails (Redis down, SQLite locked or damaged, disk full), the request
    goes on without it. After ``max_failures`` failures in a row the cache is not used at all for ``cooldown``
    seconds (a broken cache then costs nothing, and is logged once, not on every call); after that, one call tries
    it again. ``opener`` builds the inner cache, so a cache that cannot even be opened at start (Redis down, a bad
    file at the path) is retried the same way instead of stopping the service from booting. ``state`` says which it
    is, for /readyz; ``on_change(degraded)`` is called when it changes (the /metrics gauge), not on every call."""

    def __init__(self, opener: Callable[[], Cache], max_failures: int = 3, cooldown: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, on_change: Callable[[bool], None] | None = None):
        self.opener, self.max_failures, self.cooldown, self.clock = opener, max_failures, cooldown, clock
        self.on_change = on_change
        self.inner: Cache | None = None
        self.reason: str | None = None  # why it is off, while it is
        self._failures = 0
        self._open_until = 0.0
        self._lock = threading.Lock()
        self._try(lambda: None)  # open now: a good cache is ready, a bad one is reported at once

    @property
    def state(self) -> str:
        return "ok" if self.reason is None else "degraded"

    def _failed(self, e: Exception) -> None:
        with self._lock:
            self._failures += 1
            if self._failures >= self.max_failures or self.inner is None:
                opened = self.reason is None  # the breaker opens now (it may already be open: a failed probe)
                if opened:
                    log.warning("the cache is failing (%s: %s); continuing without it for %.0f s at a time",
                                type(e).__name__, e, self.cooldown)
                self.reason = f"{type(e).__name__}: {e}"[:200]
                self._open_until = self.clock() + self.cooldown
                if opened and self.on_change is not None:
                    self.on_change(True)

    def _try(self, call):
        if self.reason is not None:
            with self._lock:  # off for now; after the cool-down exactly one caller probes, the others wait it out
                if self.clock() < self._open_until:
                    return None
                self._open_until = self.clock() + self.cooldown
        try:
            if self.inner is None:
                with self._lock:
                    if self.inner is None:
                        self.inner = self.opener()
            result = call()
        except Exception as e:  # noqa: BLE001
            self._failed(e)
            return None
        if self._failures or self.reason:
            with self._lock:
                recovered = self.reason is not None
                self._failures, self.reason = 0, None
                if recovered:
                    log.warning("the cache works again")
                    if self.on_change is not None:
                        self.on_change(False)
        return result

    def get(self, key):
        return self._try(lambda: self.inner.get(key))

    def put(self, key, value):
        self._try(lambda: self.inner.put(key, value))

    def get_url(self, url, model_version):
        return self._try(lambda: self.inner.get_url(url, model_version))

    def put_url(self, url, model_version, key):
        self._try(lambda: self.inner.put_url(url, model_version, key))


def check_cache_settings(kind: str, redis_url: str | None) -> None:
    """A misconfigured cache is an error at start; a cache that fails at run time is only degraded."""
    if kind not in ("sqlite", "redis", "none"):
        raise ValueError(f"unknown cache {kind!r}: choose sqlite, redis or none")
    if kind == "redis" and not redis_url:
        raise ValueError("cache 'redis' needs a Redis URL (ALT_TEXT_REDIS_URL or --redis-url)")


def open_cache(kind: str, path: str, redis_url: str | None, ttl: int) -> Cache:
    if kind == "none":
        return NoCache()
    if kind == "redis" or redis_url:
        if not redis_url:
            raise ValueError("cache 'redis' needs a Redis URL (ALT_TEXT_REDIS_URL or --redis-url)")
        return RedisCache(redis_url, ttl)
    if kind == "sqlite":
        return SQLiteCache(path, ttl)
    raise ValueError(f"unknown cache {kind!r}: choose sqlite, redis or none")
