"""Caption cache: image content hash + model version -> result, plus a URL index with a TTL.

Keying on the bytes (not the URL) means the same picture under many URLs is captioned once, and a new model never
serves an old model's text. The URL index lets a repeated URL skip the fetch entirely until its TTL runs out.
SQLite is the default (embedded, survives restarts, shared by gunicorn workers through WAL); Redis lets several
replicas share one cache.
"""
from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
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
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
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
    """The cache is an optimisation: when it fails (Redis down, SQLite locked, disk full), log it and go on
    without it rather than fail the request."""

    def __init__(self, inner: Cache):
        self.inner = inner

    def _call(self, name: str, *args):
        try:
            return getattr(self.inner, name)(*args)
        except Exception:  # noqa: BLE001
            log.warning("cache %s failed; continuing without the cache", name, exc_info=True)
            return None

    def get(self, key):
        return self._call("get", key)

    def put(self, key, value):
        self._call("put", key, value)

    def get_url(self, url, model_version):
        return self._call("get_url", url, model_version)

    def put_url(self, url, model_version, key):
        self._call("put_url", url, model_version, key)


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
