"""Fetch an image from a URL chosen by a stranger without letting the stranger use this server as a proxy.

Why each step exists (server-side request forgery is this service's largest attack surface):

* Only ``http``/``https`` URLs without user-info are accepted; ``\\``, whitespace and control characters are
  refused because URL parsers disagree about them (``http://a@127.0.0.1@example.com/`` tricks).
* The host is resolved *once* per hop, and the fetch is refused if *any* resolved address is not public
  (loopback, private, link-local/cloud metadata, CGNAT, multicast, reserved, documentation, IPv4-mapped and
  -compatible IPv6, NAT64/6to4 with a non-public embedded IPv4, Teredo, ULA, ...). Literal hosts in every legacy
  IPv4 notation (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``) are normalised with ``inet_aton`` semantics
  first, so the address checked is the address the OS would use.
* The connection goes to the address that was checked (urllib3 pool whose host *is* the IP), while the
  ``Host`` header, TLS SNI and certificate check use the original name. Nothing resolves the name a second time,
  so DNS rebinding has no window. urllib3 is used directly rather than ``requests`` because requests would
  also honour ``HTTP(S)_PROXY`` from the environment, sending the name to a proxy that resolves it itself.
* Redirects are followed by hand (at most ``max_redirects``) and every hop is checked again like the first URL.
* The body is streamed under a byte cap (an early refusal on a too-large ``Content-Length``), with connect/read
  timeouts and a whole-fetch deadline enforced by a watchdog that shuts the socket down, so a server that drips a
  byte a second (in the TLS handshake, the headers or the body) is cut off. Compressed bodies are inflated with a
  bounded decompressor; the format is detected from the bytes by :func:`server.netsafe.images.decode_image`.

Errors are :class:`FetchError` (``code`` machine-readable, ``message`` for people, ``status`` the HTTP status to
answer with); messages never carry tracebacks nor the addresses a name resolved to.

=====================  ======  ================================================================
code                   status  meaning
=====================  ======  ================================================================
invalid_url            400     not a string, too long, whitespace/control characters or ``\\``
unsupported_scheme     400     anything but http/https (file:, ftp:, gopher:, data:, javascript:)
credentials_in_url     400     user-info (``user:pass@``) in the URL
invalid_host           400     empty or malformed host, bad IP literal, percent-encoding, zone id
invalid_port           400     port 0, above 65535 or not a number
port_not_allowed       403     port outside ``FetchLimits.allowed_ports``
blocked_address        403     the host is or resolves to a non-public address (or is ``localhost``)
dns_failure            400     the name does not resolve
dns_timeout            504     resolution did not finish within the deadline
connect_failed         502     connection refused / unreachable
connect_timeout        504     connect timeout
read_timeout           504     the server went silent for longer than ``read_timeout``
deadline_exceeded      504     the whole fetch took longer than ``total_timeout``
tls_error              502     TLS handshake or certificate verification failed
upstream_error         502     broken HTTP from the server (reset, truncated, corrupt compression)
unsupported_encoding   502     a ``Content-Encoding`` other than identity/gzip/deflate
upstream_status        502     the server answered with a non-2xx status (the status is in the message)
bad_redirect           502     a 3xx without a usable ``Location``
too_many_redirects     502     more than ``max_redirects`` redirects
too_large              413     body (``Content-Length`` or streamed or inflated) over ``max_bytes``
too_many_pixels        413     from decode_image: the image header declares more than ``max_pixels``
empty, unsupported_format, corrupt_image  422   from decode_image (same code as the ImageError)
=====================  ======  ================================================================

A redirect to a refused URL keeps the code of the refusal (e.g. ``blocked_address``), with a message saying it
was a redirect.
"""
from __future__ import annotations

import concurrent.futures
import http.client
import ipaddress
import logging
import os
import re
import socket
import threading
import time
import unicodedata
import urllib.parse
import zlib
from dataclasses import dataclass

import urllib3
from PIL import Image
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)

from .images import ImageError, decode_image

try:  # the same CA bundle requests uses; the system store otherwise
    import certifi
    _CA_BUNDLE: str | None = certifi.where()
except ImportError:  # pragma: no cover
    _CA_BUNDLE = None

log = logging.getLogger(__name__)

DEFAULT_USER_AGENT = "alt-text-fetcher/0.1 (+describes images that have no alt text)"
MAX_URL_LENGTH = 8192
DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
# The formats decode_image accepts first, so that content negotiation does not pick AVIF/JPEG XL for us.
_ACCEPT = "image/webp,image/png,image/jpeg,image/gif,image/bmp;q=0.9,image/*;q=0.5"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 10_000_000          # streaming byte cap (raw and inflated)
    connect_timeout: float = 3.0
    read_timeout: float = 5.0            # longest silence between two reads
    total_timeout: float = 10.0          # whole-fetch deadline: slow-drip servers are cut off
    max_redirects: int = 3
    max_pixels: int = 40_000_000
    allowed_ports: frozenset[int] | None = None   # None: any port 1-65535; else only these
    # TEST ONLY: exact "127.0.0.1:PORT" / "[::1]:PORT" entries: that address on that port is let through (also
    # when a name resolves to it); every other non-public address and port stays blocked.
    test_allow_loopback: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "test_allow_loopback", tuple(self.test_allow_loopback))
        if self.allowed_ports is not None:
            object.__setattr__(self, "allowed_ports", frozenset(self.allowed_ports))
        _loopback_allow_set(self.test_allow_loopback)  # validates: only loopback entries can ever be allowed


def _loopback_allow_set(entries: tuple[str, ...]) -> frozenset[tuple[Address, int]]:
    allowed = set()
    for entry in entries:
        host, sep, port = str(entry).rpartition(":")
        if not sep or host not in ("127.0.0.1", "[::1]") or not (port.isascii() and port.isdigit()) \
                or not 1 <= int(port) <= 65535:
            raise ValueError(f"test_allow_loopback entries must be '127.0.0.1:PORT' or '[::1]:PORT', not {entry!r}")
        allowed.add((ipaddress.ip_address(host.strip("[]")), int(port)))
    return frozenset(allowed)


DEFAULT_LIMITS = FetchLimits()


class FetchError(Exception):
    """A refused or failed fetch. ``code`` is stable and machine-readable, ``message`` is for people and
    ``status`` is the HTTP status the service should answer with."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(code, message, status)
        self.code = code
        self.message = message
        self.status = status

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"FetchError({self.code!r}, {self.message!r}, {self.status})"


# ---------------------------------------------------------------------------------------------------- addresses

def _nets(*cidrs: str) -> tuple:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# IANA special-purpose registries, checked explicitly (ipaddress.is_global alone misses multicast, 6to4, ...).
_BLOCKED_V4 = _nets(
    "0.0.0.0/8",        # "this network", includes the unspecified 0.0.0.0
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # private
    "100.64.0.0/10",    # carrier-grade NAT
    "127.0.0.0/8",      # loopback
    "169.254.0.0/16",   # link-local, cloud metadata 169.254.169.254
    "192.0.0.0/24",     # IETF protocol assignments
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",  # documentation
    "192.88.99.0/24",   # deprecated 6to4 relay anycast
    "198.18.0.0/15",    # benchmarking
    "224.0.0.0/4",      # multicast
    "240.0.0.0/4",      # reserved, includes broadcast 255.255.255.255
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")       # well-known NAT64 prefix: judged by the embedded IPv4
_SIXTOFOUR = ipaddress.ip_network("2002::/16")      # 6to4: judged by the embedded IPv4
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
_BLOCKED_V6 = _nets(
    "::/96",            # unspecified ::, loopback ::1, IPv4-compatible ::a.b.c.d
    "::ffff:0:0/96",    # IPv4-mapped (always refused: no public DNS answer is one)
    "64:ff9b:1::/48",   # local-use NAT64
    "100::/64",         # discard-only
    "2001::/23",        # IETF protocol assignments: Teredo 2001::/32, ORCHID, ...
    "2001:db8::/32", "3fff::/20",   # documentation
    "5f00::/16",        # SRv6 SIDs
    "fc00::/7",         # unique local
    "fe80::/10",        # link-local
    "fec0::/10",        # site-local (deprecated)
    "ff00::/8",         # multicast
)


def is_public_address(ip) -> bool:
    """True only for a globally routable unicast address (str or ipaddress object); anything unparsable is not."""
    if not isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        try:
            ip = ipaddress.ip_address(str(ip))
        except ValueError:
            return False
    if ip.version == 4:
        if any(ip in net for net in _BLOCKED_V4):
            return False
        return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local)
    if ip.scope_id:
        return False
    if ip in _NAT64:
        return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF))
    if ip in _SIXTOFOUR:
        return is_public_address(ip.sixtofour)
    if ip not in _GLOBAL_UNICAST_V6 or any(ip in net for net in _BLOCKED_V6):
        return False
    return ip.is_global and ip.teredo is None and ip.ipv4_mapped is None


# ---------------------------------------------------------------------------------------------------- URLs

_HOST_CHARS = re.compile(r"[a-z0-9_.-]+")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")


def _bad(code: str, message: str, status: int = 400) -> FetchError:
    return FetchError(code, message, status)


def _parse_host(host: str) -> tuple[str, Address | None]:
    """(ASCII host name, IP address if the host is a literal). Legacy IPv4 notations are normalised the way
    ``inet_aton`` (and so ``getaddrinfo``) reads them; a host whose last label is a number must be a valid IPv4
    address (as in the WHATWG URL standard), so ``1.2.3.4.5`` is refused rather than sent to DNS."""
    h = str(host or "")
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if not h:
        raise _bad("invalid_host", "the URL has no host")
    if any(not c.isprintable() or c.isspace() for c in h) or "%" in h or "\\" in h:
        raise _bad("invalid_host", "the host contains forbidden characters")
    if ":" in h:
        try:
            return str(ipaddress.IPv6Address(h)), ipaddress.IPv6Address(h)
        except ValueError:
            raise _bad("invalid_host", "the host is not a valid IPv6 address") from None
    if h.endswith("."):
        h = h[:-1]  # the FQDN form "example.com." names the same host
    try:
        name = h.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise _bad("invalid_host", "the host is not a valid name") from None
    labels = name.split(".")
    if not _HOST_CHARS.fullmatch(name) or any(not label for label in labels) or len(name) > 253:
        raise _bad("invalid_host", "the host is not a valid name")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            ip = ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            raise _bad("invalid_host", "the host is not a valid IPv4 address") from None
        return str(ip), ip
    return name, None


def check_url(url: str) -> urllib.parse.SplitResult:
    """Syntax-level checks: http/https only, no user-info, a valid host and port. Raises FetchError."""
    if not isinstance(url, str) or not url:
        raise _bad("invalid_url", "the URL must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise _bad("invalid_url", f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(c == "\\" or c.isspace() or unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Zs") for c in url):
        raise _bad("invalid_url", "the URL contains whitespace, control characters or backslashes")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise _bad("invalid_url", "the URL cannot be parsed") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        shown = (scheme + ":") if scheme else "a URL without a scheme"
        raise _bad("unsupported_scheme", f"only http and https URLs can be fetched, not {shown}")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise _bad("credentials_in_url", "URLs with a user name or password are not fetched")
    hostport = parts.netloc
    if hostport.startswith("["):
        _, _, after = hostport.partition("]")
        if after and not after.startswith(":"):
            raise _bad("invalid_host", "the host is not a valid IPv6 address")
        raw_port = after[1:] if after else ""
    else:
        raw_port = hostport.partition(":")[2]
    if raw_port and not (raw_port.isascii() and raw_port.isdigit()):
        raise _bad("invalid_port", "the port is not a number")
    try:
        port = parts.port
    except ValueError:
        raise _bad("invalid_port", "the port must be between 1 and 65535") from None
    if port is not None and not 1 <= port <= 65535:
        raise _bad("invalid_port", "the port must be between 1 and 65535")
    if not parts.hostname:
        raise _bad("invalid_host", "the URL has no host")
    _parse_host(parts.hostname)
    return parts


def _is_localhost_name(name: str) -> bool:
    return name == "localhost" or name.endswith(".localhost")  # RFC 6761: always loopback


def resolve_public(host: str, port: int, resolver=socket.getaddrinfo,
                   limits: FetchLimits = DEFAULT_LIMITS) -> list[Address]:
    """Resolve ``host`` (once) and return its addresses, refusing if *any* is not public (a name with one public
    and one private address is refused: the client library might pick either). Literal IPs skip the resolver.
    ``resolver`` has ``socket.getaddrinfo``'s signature (tests pass a stub). Raises FetchError."""
    name, literal = _parse_host(host)
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise _bad("invalid_port", "the port must be between 1 and 65535")
    if limits.allowed_ports is not None and port not in limits.allowed_ports:
        raise _bad("port_not_allowed", f"port {port} is not allowed", 403)
    if literal is not None:
        addresses = [literal]
    else:
        if _is_localhost_name(name):
            raise _bad("blocked_address", "localhost is not fetched", 403)
        try:
            infos = resolver(name, port, type=socket.SOCK_STREAM)
        except UnicodeError:
            raise _bad("invalid_host", "the host is not a valid name") from None
        except OSError:  # socket.gaierror and friends
            raise _bad("dns_failure", f"the host {name} could not be resolved") from None
        addresses = []
        for family, _type, _proto, _canon, sockaddr in infos or ():
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                ip = ipaddress.ip_address(str(sockaddr[0]))
            except ValueError:
                raise _bad("blocked_address", f"the host {name} resolves to an unusable address", 403) from None
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            raise _bad("dns_failure", f"the host {name} has no address")
    allowed = _loopback_allow_set(limits.test_allow_loopback)
    for ip in addresses:
        if not is_public_address(ip) and (ip, port) not in allowed:
            what = "is" if literal is not None else "resolves to"
            raise _bad("blocked_address", f"the host {what} a non-public address, which is not fetched", 403)
    return addresses


# ---------------------------------------------------------------------------------------------------- transport

class _Watchdog:
    """One thread that expires every fetch's deadline, instead of a timer thread per fetch: starting, cancelling
    and joining a thread for each image cost a dozen context switches, and each switch takes a core from the
    model process for a moment (measured: the worker switched ~55 times per image under load). A deadline is
    registered and dropped under a lock; the thread is woken only when a new deadline is due before the one it
    sleeps towards, which with one total timeout for every fetch is almost never."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a forked child has no thread, and maybe a held lock

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._live: set[_Deadline] = set()
        self._wake_at = float("inf")  # when the thread will next look, as far as it has said
        self._started = False

    def add(self, deadline: _Deadline) -> None:
        with self._cond:
            if not self._started:
                threading.Thread(target=self._run, name="fetch-deadlines", daemon=True).start()
                self._started = True
            self._live.add(deadline)
            if deadline.at < self._wake_at:
                self._wake_at = deadline.at
                self._cond.notify()

    def drop(self, deadline: _Deadline) -> None:
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


class _Deadline:
    """The whole-fetch deadline. The watchdog shuts every registered socket down when it expires, which wakes
    any blocked recv (TLS handshake, headers, body) however slowly the server drips."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + max(seconds, 0.0)
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        _WATCHDOG.add(self)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def over(self) -> bool:
        return self.expired or self.remaining() <= 0

    def check(self) -> None:
        if self.over():
            raise _bad("deadline_exceeded", "the image server took too long to answer", 504)

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

    def __enter__(self) -> _Deadline:
        return self

    def __exit__(self, *exc) -> None:
        _WATCHDOG.drop(self)


_WATCHDOG = _Watchdog()


class _PinnedConnectionMixin:
    """Connects to ``self.host``, which is always the checked IP address (never a name), and hands the socket to
    the deadline watchdog."""

    def __init__(self, *args, fetch_deadline: _Deadline, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._fetch_deadline = fetch_deadline

    def _new_conn(self) -> socket.socket:
        ipaddress.ip_address(self._dns_host)  # a name here would mean a second, unchecked resolution
        sock = super()._new_conn()
        self._fetch_deadline.watch(sock)
        return sock


class _PinnedHTTPConnection(_PinnedConnectionMixin, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedConnectionMixin, HTTPSConnection):
    pass


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


def _open_pool(scheme: str, ip: Address, port: int, name: str, deadline: _Deadline) -> HTTPConnectionPool:
    common = dict(maxsize=1, block=False, retries=False, fetch_deadline=deadline)
    if scheme == "https":
        # SNI and certificate verification against the original name (or the IP for an IP-literal URL).
        return _PinnedHTTPSPool(str(ip), port, cert_reqs="CERT_REQUIRED", ca_certs=_CA_BUNDLE,
                                server_hostname=name, **common)
    return _PinnedHTTPPool(str(ip), port, **common)


def _translate(exc: BaseException, deadline: _Deadline) -> FetchError:
    if deadline.over():
        return _bad("deadline_exceeded", "the image server took too long to answer", 504)
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, SSLError):
        return _bad("tls_error", "the TLS connection to the image server failed (certificate or handshake)", 502)
    if isinstance(exc, NewConnectionError):  # before ConnectTimeoutError: it subclasses it
        return _bad("connect_failed", "could not connect to the image server (connection refused or unreachable)",
                    502)
    if isinstance(exc, ConnectTimeoutError):
        return _bad("connect_timeout", "connecting to the image server timed out", 504)
    if isinstance(exc, ReadTimeoutError):
        return _bad("read_timeout", "the image server stopped sending data", 504)
    return _bad("upstream_error", "the image server sent a broken HTTP response", 502)


_TRANSPORT_ERRORS = (HTTPError, http.client.HTTPException, OSError)


def _request(parts: urllib.parse.SplitResult, name: str, port: int, addresses: list[Address],
             limits: FetchLimits, deadline: _Deadline, user_agent: str):
    scheme = parts.scheme.lower()
    host_header = f"[{name}]" if ":" in name else name
    if parts.port is not None and parts.port != DEFAULT_PORTS[scheme]:
        host_header += f":{port}"
    target = urllib.parse.quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        target += "?" + urllib.parse.quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    headers = {"Host": host_header, "User-Agent": user_agent, "Accept": _ACCEPT,
               "Accept-Encoding": "identity", "Connection": "close"}
    last: FetchError | None = None
    for ip in addresses:  # all were checked; try the next only if connecting failed
        deadline.check()
        remaining = max(deadline.remaining(), 0.01)
        timeout = urllib3.Timeout(connect=min(limits.connect_timeout, remaining),
                                  read=min(limits.read_timeout, remaining))
        pool = _open_pool(scheme, ip, port, name, deadline)
        try:
            response = pool.urlopen("GET", target, headers=headers, retries=False, redirect=False,
                                    assert_same_host=False, preload_content=False, decode_content=False,
                                    timeout=timeout)
            return pool, response
        except _TRANSPORT_ERRORS as e:
            pool.close()
            last = _translate(e, deadline)
            if last.code not in ("connect_failed", "connect_timeout"):
                raise last from None
    assert last is not None
    raise last


class _BoundedBody:
    """Collects the body under the byte cap, inflating gzip/deflate with a bounded decompressor."""

    def __init__(self, encoding: str | None, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.raw = 0
        self.out = bytearray()
        enc = (encoding or "").strip().lower()
        if enc in ("", "identity"):
            self.inflater = None
        elif enc in ("gzip", "x-gzip"):
            self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self.inflater = zlib.decompressobj()
        else:
            raise _bad("unsupported_encoding", f"the image server used an unsupported encoding ({enc[:40]})", 502)

    def _too_large(self) -> FetchError:
        return _bad("too_large", f"the image is larger than {self.max_bytes:,} bytes", 413)

    def _emit(self, data: bytes) -> None:
        self.out += data
        if len(self.out) > self.max_bytes:
            raise self._too_large()

    def room(self) -> int:
        return max(self.max_bytes - self.raw + 1, 1)

    def feed(self, chunk: bytes) -> None:
        self.raw += len(chunk)
        if self.raw > self.max_bytes:
            raise self._too_large()
        if self.inflater is None:
            self._emit(chunk)
            return
        try:
            self._emit(self.inflater.decompress(chunk, self.max_bytes - len(self.out) + 1))
            while self.inflater.unconsumed_tail:
                self._emit(self.inflater.decompress(self.inflater.unconsumed_tail,
                                                    self.max_bytes - len(self.out) + 1))
        except zlib.error:
            raise _bad("upstream_error", "the image server sent a corrupt compressed body", 502) from None

    def finish(self) -> bytes:
        if self.inflater is not None:
            try:
                self._emit(self.inflater.flush())
            except zlib.error:
                raise _bad("upstream_error", "the image server sent a corrupt compressed body", 502) from None
        return bytes(self.out)


def _read_body(response, limits: FetchLimits, deadline: _Deadline) -> bytes:
    length = response.headers.get("Content-Length")
    if length is not None:
        try:
            declared = int(length.strip())
        except ValueError:
            declared = None
        if declared is not None and declared > limits.max_bytes:
            raise _bad("too_large", f"the image is larger than {limits.max_bytes:,} bytes "
                                    f"(Content-Length {declared:,})", 413)
    body = _BoundedBody(response.headers.get("Content-Encoding"), limits.max_bytes)
    while True:
        deadline.check()
        chunk = response.read(min(_CHUNK, body.room()))
        if not chunk:
            break
        body.feed(chunk)
    deadline.check()  # a socket cut by the watchdog can look like a clean end of body
    return body.finish()


# Resolution runs in a small pool so that a slow DNS server counts against the deadline instead of blocking the
# worker for as long as the system resolver likes (a stuck lookup keeps its thread, the fetch returns).
_DNS_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="fetch-dns")


def _resolve_within(deadline: _Deadline, name: str, literal: Address | None, port: int, resolver,
                    limits: FetchLimits) -> list[Address]:
    if literal is not None or _is_localhost_name(name):  # nothing to look up: no thread to wait on
        return resolve_public(name, port, resolver, limits)
    future = _DNS_POOL.submit(resolve_public, name, port, resolver, limits)
    try:
        return future.result(timeout=max(deadline.remaining(), 0.0))
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise _bad("dns_timeout", f"resolving {name} took too long", 504) from None


def _refused_redirect(e: FetchError) -> FetchError:
    return FetchError(e.code, f"the image server redirected to a URL that is refused: {e.message}", e.status)


def fetch_bytes(url: str, limits: FetchLimits = DEFAULT_LIMITS, resolver=socket.getaddrinfo,
                user_agent: str = DEFAULT_USER_AGENT) -> tuple[bytes, str]:
    """GET ``url`` under every check in the module docstring; return (body, final URL after redirects)."""
    current = url
    with _Deadline(limits.total_timeout) as deadline:
        for hop in range(limits.max_redirects + 1):
            try:
                parts = check_url(current)
                name, literal = _parse_host(parts.hostname)
                port = parts.port or DEFAULT_PORTS[parts.scheme.lower()]
                addresses = _resolve_within(deadline, name, literal, port, resolver, limits)
            except FetchError as e:
                raise (_refused_redirect(e) if hop else e) from None
            deadline.check()
            pool, response = _request(parts, name, port, addresses, limits, deadline, user_agent)
            try:
                if response.status in REDIRECT_STATUSES:
                    location = (response.headers.get("Location") or "").strip()
                    if not location:
                        raise _bad("bad_redirect", f"the image server answered HTTP {response.status} "
                                                   "without a Location", 502)
                    try:
                        current = urllib.parse.urljoin(current, location)
                    except ValueError:
                        raise _bad("bad_redirect", "the image server redirected to an invalid URL", 502) from None
                    continue
                if not 200 <= response.status < 300:
                    raise _bad("upstream_status", f"the image server answered HTTP {response.status}", 502)
                return _read_body(response, limits, deadline), current
            except _TRANSPORT_ERRORS as e:
                raise _translate(e, deadline) from None
            finally:
                response.close()
                pool.close()
        raise _bad("too_many_redirects", f"more than {limits.max_redirects} redirects", 502)


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
    """Fetch and decode: (RGB image, the raw bytes, which the caller hashes for its cache)."""
    data, _final_url = fetch_bytes(url, limits, resolver)
    return decode_fetched(data, limits.max_pixels), data
