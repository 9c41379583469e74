"""The one fetch layer: GET a URL for the service, the CLI and the audit, under a :mod:`policy <server.netsafe.
policy>` (public addresses only, or the user's own site), with one URL check and host encoding (:mod:`.urls`), one
redirect rule (:mod:`.redirects`), one byte cap read under one deadline (:mod:`.body`, :mod:`.deadline`) and one
error type (:mod:`.errors`).

Why the transport is urllib3 itself: under ``PUBLIC_ONLY`` the connection goes to the address that was checked (a
urllib3 pool whose host *is* the IP), while the ``Host`` header, TLS SNI and the certificate check use the original
name, and nothing resolves the name a second time, so DNS rebinding has no window; ``requests`` would also honour
``HTTP(S)_PROXY`` from the environment, sending the name to a proxy that resolves it itself. Under ``OWN_SITE`` any
address is reached, proxies from the environment are honoured (not for loopback hosts) and connections are kept
alive in one urllib3 pool manager per :class:`Fetcher`. Under both, every socket a fetch uses is handed to that
fetch's deadline, so a server that drips a byte a second (in the TLS handshake, the headers or the body) is cut off.

Each hop of a redirect is a new fetch of a new URL, checked again like the first under the same policy.
"""
from __future__ import annotations

import codecs
import concurrent.futures
import http.client
import ipaddress
import logging
import re
import socket
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Mapping

import urllib3
from PIL import Image
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)

from .addresses import is_localhost_name, is_public_address, needs_dns, resolve_public  # noqa: F401 (the API)
from .body import read_body as read_capped
from .deadline import Deadline
from .errors import FetchError, refused_redirect
from .images import ImageError, decode_image
from .limits import DEFAULT_LIMITS, MAX_REDIRECTS, MAX_URL_LENGTH, FetchLimits  # noqa: F401 (the module's API)
from .policy import OWN_SITE, PUBLIC_ONLY, Policy
from .redirects import REDIRECT_STATUSES, Redirects
from .urls import DEFAULT_PORTS, Address, check_url, host_header, parse_host, request_target

try:  # the same CA bundle requests uses; the system store otherwise
    import certifi
    _CA_BUNDLE: str | None = certifi.where()
except ImportError:  # pragma: no cover
    _CA_BUNDLE = None

log = logging.getLogger(__name__)

DEFAULT_USER_AGENT = "alt-text-fetcher/0.1 (+describes images that have no alt text)"
# The formats decode_image accepts first, so that content negotiation does not pick AVIF/JPEG XL for us.
IMAGE_ACCEPT = "image/webp,image/png,image/jpeg,image/gif,image/bmp;q=0.9,image/*;q=0.5"
_TRANSPORT_ERRORS = (HTTPError, http.client.HTTPException, OSError)


@dataclass
class Response:
    """What a fetch got: the final URL, the status and headers (case-insensitive), and the body when it was
    read (``truncated`` when it was cut at the cap)."""
    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes = b""
    truncated: bool = False

    @cached_property
    def _media(self) -> tuple[str, str | None]:
        media, _, params = (self.headers.get("Content-Type") or "").partition(";")
        match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", params, re.I)
        charset = match.group(1) if match else None
        if charset:
            try:
                codecs.lookup(charset)
            except LookupError:
                charset = None
        return media.strip().lower(), charset

    @property
    def content_type(self) -> str:
        """The media type, lower-case, without parameters ("" when absent)."""
        return self._media[0]

    @property
    def charset(self) -> str | None:
        """The ``charset`` parameter when Python knows the codec, else None."""
        return self._media[1]


# ---------------------------------------------------------------------------------------------------- transport

_ACTIVE = threading.local()  # .deadline: the deadline of the fetch this thread is making


class _WatchedConnectionMixin:
    """Hands every socket it uses, new or kept alive from an earlier fetch, to the deadline of the fetch this
    thread is making. A pinned connection connects to ``self.host``, which is always the checked IP address:
    a name there would mean a second, unchecked resolution."""

    pinned = False

    def _new_conn(self) -> socket.socket:
        if self.pinned:
            ipaddress.ip_address(self._dns_host)
        sock = super()._new_conn()
        _ACTIVE.deadline.watch(sock)
        return sock

    def request(self, *args, **kwargs):
        if self.sock is not None:
            _ACTIVE.deadline.watch(self.sock)
        return super().request(*args, **kwargs)


def _pool_classes(pinned: bool) -> dict[str, type[HTTPConnectionPool]]:
    """urllib3's pool class per scheme, with connections that watch their sockets (and, pinned, refuse names)."""
    classes = {}
    for scheme, connection, pool in (("http", HTTPConnection, HTTPConnectionPool),
                                     ("https", HTTPSConnection, HTTPSConnectionPool)):
        watched = type(f"_Watched{connection.__name__}", (_WatchedConnectionMixin, connection), {"pinned": pinned})
        classes[scheme] = type(f"_Watched{pool.__name__}", (pool,), {"ConnectionCls": watched})
    return classes


_PINNED_POOLS = _pool_classes(pinned=True)  # PUBLIC_ONLY: one pool per fetch, to the checked address
_WATCHED_POOLS = _pool_classes(pinned=False)  # OWN_SITE: kept alive in the Fetcher's pool managers


# ---------------------------------------------------------------------------------------------------- PUBLIC_ONLY

def _open_pool(scheme: str, ip: Address, port: int, name: str) -> HTTPConnectionPool:
    common = dict(maxsize=1, block=False, retries=False)
    if scheme == "https":
        # SNI and certificate verification against the original name (or the IP for an IP-literal URL).
        return _PINNED_POOLS["https"](str(ip), port, cert_reqs="CERT_REQUIRED", ca_certs=_CA_BUNDLE,
                                      server_hostname=name, **common)
    return _PINNED_POOLS["http"](str(ip), port, **common)


# Resolution runs in a small pool so that a slow DNS server counts against the deadline instead of blocking the
# worker for as long as the system resolver likes (a stuck lookup keeps its thread, the fetch returns).
_DNS_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="fetch-dns")


def _resolve_within(deadline: Deadline, name: str, literal: Address | None, port: int, resolver,
                    limits: FetchLimits) -> list[Address]:
    if not needs_dns(name, literal):  # nothing to look up: no thread to wait on
        return resolve_public(name, port, resolver, limits)
    future = _DNS_POOL.submit(resolve_public, name, port, resolver, limits)
    try:
        return future.result(timeout=max(deadline.remaining(), 0.0))
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise FetchError("dns_timeout", f"resolving {name} took too long", 504) from None


# ---------------------------------------------------------------------------------------------------- fetching

def _translate(exc: BaseException, deadline: Deadline) -> FetchError:
    if deadline.over():
        return FetchError("deadline_exceeded", "the image server took too long to answer", 504)
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, SSLError):
        return FetchError("tls_error", "the TLS connection to the image server failed (certificate or handshake)",
                          502)
    if isinstance(exc, NameResolutionError):  # OWN_SITE only: PUBLIC_ONLY resolves before connecting
        return FetchError("dns_failure", "the host could not be resolved")
    if isinstance(exc, NewConnectionError):  # before ConnectTimeoutError: it subclasses it
        return FetchError("connect_failed", "could not connect to the image server (connection refused or "
                                            "unreachable)", 502)
    if isinstance(exc, ConnectTimeoutError):
        return FetchError("connect_timeout", "connecting to the image server timed out", 504)
    if isinstance(exc, ReadTimeoutError):
        return FetchError("read_timeout", "the image server stopped sending data", 504)
    return FetchError("upstream_error", "the image server sent a broken HTTP response", 502)


def _timeout(limits: FetchLimits, deadline: Deadline) -> urllib3.Timeout:
    remaining = max(deadline.remaining(), 0.01)
    return urllib3.Timeout(connect=min(limits.connect_timeout, remaining), read=min(limits.read_timeout, remaining))


class Fetcher:
    """GETs URLs under one policy, ``limits`` and ``user_agent`` (each :meth:`get` may narrow the limits). Safe
    to share between threads; under ``OWN_SITE`` it keeps connections alive until :meth:`close`."""

    def __init__(self, limits: FetchLimits = DEFAULT_LIMITS, policy: Policy = PUBLIC_ONLY,
                 resolver=socket.getaddrinfo, user_agent: str = DEFAULT_USER_AGENT) -> None:
        self.limits, self.policy, self.resolver, self.user_agent = limits, policy, resolver, user_agent
        self._managers: dict[str | None, urllib3.PoolManager] = {}
        self._lock = threading.Lock()
        self._proxies = urllib.request.getproxies() if policy is OWN_SITE else {}

    def get(self, url: str, *, limits: FetchLimits | None = None, follow: bool = True,
            read_body: Callable[[Response], bool] | None = None, truncate: bool = False,
            accept: str = IMAGE_ACCEPT) -> Response:
        """GET ``url``; with ``follow``, redirects are followed by the one rule, each hop checked again. The body
        of a response that is no redirect is read when ``read_body(response)`` says so (always without it), under
        the byte cap: refused over it (``too_large``), or with ``truncate`` cut there. Any status is returned;
        raises FetchError for everything else."""
        limits = limits or self.limits
        redirects = Redirects(url, limits.max_redirects)
        with Deadline(limits.total_timeout) as deadline:
            _ACTIVE.deadline = deadline
            try:
                while True:
                    response = self._open(redirects.current, limits, deadline, accept, len(redirects.chain) > 1)
                    reused = False
                    try:
                        if follow and response.status in REDIRECT_STATUSES:
                            target = redirects.location(response.status, response.headers.get("Location"))
                            if target is None:
                                raise FetchError("bad_redirect", f"the image server answered HTTP {response.status} "
                                                                 "without a usable Location", 502)
                            redirects.follow(target)
                            continue
                        out = Response(redirects.current, response.status, response.headers)
                        if response.status not in REDIRECT_STATUSES and (read_body is None or read_body(out)):
                            out.body, out.truncated = read_capped(response, limits.max_bytes, deadline, truncate)
                            reused = not out.truncated
                        return out
                    except _TRANSPORT_ERRORS as e:
                        raise _translate(e, deadline) from None
                    finally:
                        self._done(response, reused)
            finally:
                _ACTIVE.deadline = None

    def _open(self, url: str, limits: FetchLimits, deadline: Deadline, accept: str, redirected: bool):
        """Send the request for one hop; the response's headers are read, its body is not."""
        try:
            parts = check_url(url)
            name, literal = parse_host(parts.hostname)
            port = parts.port or DEFAULT_PORTS[parts.scheme.lower()]
            if self.policy is PUBLIC_ONLY:
                addresses = _resolve_within(deadline, name, literal, port, self.resolver, limits)
        except FetchError as e:
            raise (refused_redirect(e) if redirected else e) from None
        deadline.check()
        headers = {"User-Agent": self.user_agent, "Accept": accept}
        if self.policy is PUBLIC_ONLY:
            return self._open_pinned(parts, name, port, addresses, limits, deadline, headers)
        scheme = parts.scheme.lower()
        loopback = is_localhost_name(name) or (literal is not None and literal.is_loopback)
        proxy = self._proxies.get(scheme)
        if proxy and (loopback or urllib.request.proxy_bypass(name)):
            proxy = None
        try:
            return self._manager(proxy).urlopen(
                "GET", f"{scheme}://{host_header(parts, name)}{request_target(parts)}",
                headers={**headers, "Accept-Encoding": "gzip, deflate"}, retries=False, redirect=False,
                preload_content=False, decode_content=False, timeout=_timeout(limits, deadline))
        except _TRANSPORT_ERRORS as e:
            raise _translate(e, deadline) from None

    @staticmethod
    def _open_pinned(parts, name: str, port: int, addresses: list[Address], limits: FetchLimits,
                     deadline: Deadline, headers: dict):
        headers = {"Host": host_header(parts, name), **headers, "Accept-Encoding": "identity",
                   "Connection": "close"}
        last: FetchError | None = None
        for ip in addresses:  # all were checked; try the next only if connecting failed
            deadline.check()
            pool = _open_pool(parts.scheme.lower(), ip, port, name)
            try:
                response = pool.urlopen("GET", request_target(parts), headers=headers, retries=False,
                                        redirect=False, assert_same_host=False, preload_content=False,
                                        decode_content=False, timeout=_timeout(limits, deadline))
                response.pinned_pool = pool
                return response
            except _TRANSPORT_ERRORS as e:
                pool.close()
                last = _translate(e, deadline)
                if last.code not in ("connect_failed", "connect_timeout"):
                    raise last from None
        assert last is not None
        raise last

    def _manager(self, proxy: str | None) -> urllib3.PoolManager:
        with self._lock:
            manager = self._managers.get(proxy)
            if manager is None:
                common = dict(num_pools=32, maxsize=16, block=False, retries=False, cert_reqs="CERT_REQUIRED",
                              ca_certs=_CA_BUNDLE)
                manager = urllib3.ProxyManager(proxy, **common) if proxy else urllib3.PoolManager(**common)
                manager.pool_classes_by_scheme = _WATCHED_POOLS
                self._managers[proxy] = manager
            return manager

    @staticmethod
    def _done(response, reused: bool) -> None:
        """A response read to its end gives its connection back for the next fetch; any other closes it."""
        pool = getattr(response, "pinned_pool", None)
        if pool is not None:
            response.close()
            pool.close()
            return
        if not reused:
            response.close()
        response.release_conn()

    def close(self) -> None:
        with self._lock:
            managers, self._managers = list(self._managers.values()), {}
        for manager in managers:
            manager.clear()


def fetch_bytes(url: str, limits: FetchLimits = DEFAULT_LIMITS, resolver=socket.getaddrinfo,
                user_agent: str = DEFAULT_USER_AGENT) -> tuple[bytes, str]:
    """GET ``url`` from public addresses only; return (body, final URL after redirects). A non-2xx answer is
    ``upstream_status``."""
    r = Fetcher(limits, PUBLIC_ONLY, resolver, user_agent).get(url, read_body=_success)
    if not 200 <= r.status < 300:
        raise FetchError("upstream_status", f"the image server answered HTTP {r.status}", 502)
    return r.body, r.url


def _success(response: Response) -> bool:
    return 200 <= response.status < 300


def decode_fetched(data: bytes, max_pixels: int = DEFAULT_LIMITS.max_pixels) -> Image.Image:
    """Decode fetched or uploaded bytes: (RGB image). The format is detected from the bytes; ImageError becomes
    FetchError with the same code (413 for too_many_pixels and too_large, 422 otherwise)."""
    try:
        return decode_image(data, max_pixels)
    except ImageError as e:
        status = 413 if e.code in ("too_many_pixels", "too_large") else 422
        raise FetchError(e.code, e.message, status) from None
    except Exception:  # a decoder bug on hostile bytes must not become a 500 with a traceback
        log.warning("unexpected error decoding an image", exc_info=True)
        raise FetchError("corrupt_image", "the image could not be decoded", 422) from None


def fetch_image(url: str, limits: FetchLimits = DEFAULT_LIMITS,
                resolver=socket.getaddrinfo) -> tuple[Image.Image, bytes]:
    """Fetch from public addresses only and decode: (RGB image, the raw bytes, which the caller hashes for its
    cache)."""
    data, _final_url = fetch_bytes(url, limits, resolver)
    return decode_fetched(data, limits.max_pixels), data
